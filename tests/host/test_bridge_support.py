"""Helpers shared by the bridge/uplink/send/monitor/plot tests (no tests here)."""
import time

from host_tools import registry as reg
from protocol import cbor, cose, framing, wire

KEY = bytes(range(32))
KEY2 = bytes(range(100, 132))
DEV = "dev1"


def level(remaining=500, fill=50, rate=None, tte=None, err=None):
    p = {1: remaining, 2: fill, 6: 8}
    if rate is not None:
        p[3] = rate
    if tte is not None:
        p[4] = tte
    if err is not None:
        p[5] = err
    return p


HELLO = {0: 1, 1: 1, 2: "1.0", 3: "virtual", 4: "TONER-1", 6: 1000, 7: 0, 9: 4}


def make_registry(tmp_path, devices=None):
    path = tmp_path / "registry.json"
    for dev, key in (devices or {DEV: KEY}).items():
        reg.add_device(path, dev, key.hex(), board="virtual")
    return path


def udp_bridge_argv(tmp_path, *extra):
    """`consumables bridge` arguments for a throwaway UDP bridge in tmp_path, then extra."""
    return ["--listen", "udp://127.0.0.1:0", "--uplink", "jsonl:%s" % (tmp_path / "u.jsonl"),
            "--registry", str(make_registry(tmp_path)), "--db", str(tmp_path / "b.sqlite"), *extra]


def frame(seq, payload=None, dev=DEV, key=KEY):
    return wire.pack(key, dev, seq, payload if payload is not None else level())


def chunk(fr):
    return wire.unframe(fr)


def decode_down(fr, key=KEY):
    """A downlink frame -> (kid str, dseq, payload map); raises if its MAC is wrong."""
    body = framing.decode_frame(wire.unframe(fr))
    kid, dseq, raw = cose.verify(body, lambda k: key, aad=cose.AAD_DOWN)
    return kid.decode(), dseq, cbor.loads(raw)


class Replies(list):
    """A reply callable that records the frames sent back."""

    def __call__(self, fr):
        self.append(bytes(fr))

    def decoded(self, key=KEY):
        return [decode_down(f, key) for f in self]


def wait_for(cond, timeout=5.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()
