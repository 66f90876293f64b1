"""Coverage-guided fuzzing (atheris) of the host's input path.

    .venv/bin/python tests/fuzz/atheris_input_path.py -runs=2000000 tests/fuzz/corpus   # long run
    (tests/fuzz/test_atheris.py runs a CI-sized run)

Input bytes are treated as what arrives on a serial line; each complete chunk goes
through the deframer, COBS/CRC, cbor2, COSE verification and the schema. The same bytes
are also an MQTT command message from the supplier (JSON -> schema check). The bridge
core (host_tools.bridge) is driven too when it is importable. Anything but a
ProtocolError is a crash; atheris saves the input as crash-<sha1> for a regression test.
"""
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
with atheris.instrument_imports():
    import cbor2  # noqa: F401
    from host_tools import codec
    from host_tools.uplinks import MqttUplink
    from protocol import cbor, cose, framing, schema, wire
    from protocol.errors import ProtocolError

KEY = bytes(range(32))
KEYS = {b"fz-01": KEY}


def _command(device, name, fields):
    # what the MQTT handler lets through must be a valid downlink command
    if name is not None:
        schema.from_named(name, fields)


MQTT = MqttUplink("mqtt://127.0.0.1:1/fz")     # never connected: its message handler alone
MQTT.on_command = _command


class _Msg:
    def __init__(self, payload):
        self.topic = "fz/fz-01/cmd"
        self.payload = payload


def one_input(data):
    d = framing.Deframer()
    for chunk in d.feed(data):
        try:
            codec.decode_chunk(chunk, KEYS.get)
        except ProtocolError:
            pass
        try:
            wire.unpack(chunk, KEYS.get)
        except ProtocolError:
            pass
    # the payload decoder on its own, behind a valid MAC, so the fuzzer can reach it
    try:
        codec.decode_body(cose.encode(KEY, "fz-01", 1, data[:200]), KEYS.get)
    except ProtocolError:
        pass
    try:
        cbor.loads(data)
    except ProtocolError:
        pass
    # the supplier's side: an MQTT command message (JSON) from the PREFIX/DEVICE/cmd topic
    MQTT._on_message(None, None, _Msg(data))


def seeds(folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.iterdir()):
        (folder / "level").write_bytes(wire.pack(KEY, "fz-01", 5, {1: 10, 2: 50, 6: 9}))


if __name__ == "__main__":
    for a in sys.argv[1:]:
        if not a.startswith("-"):
            seeds(a)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
