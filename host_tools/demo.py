"""`consumables demo`: the protocol end to end, MicroPython on one side, the host on the other.

The real MicroPython unix port builds authenticated frames with the same protocol code a
board runs (protocol/ is deployed as-is); the host deframes them from the byte stream,
verifies each MAC with cbor2 + hmac and prints the typed messages. A forged copy of one
frame shows the rejection path.
"""
import argparse
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from host_tools import codec
from protocol import framing
from protocol.errors import ProtocolError

ROOT = Path(__file__).resolve().parent.parent

DEVICE_SCRIPT = r"""
import sys
from protocol import wire, messages as m
key = bytes.fromhex(sys.argv[1])
out = sys.stdout.buffer if hasattr(sys.stdout, 'buffer') else sys.stdout
msgs = [
  {0: m.HELLO, 1: 1, 2: '0.1.0', 3: 'virtual', 4: 'TN-2420', 6: 3000, 7: 2, 8: ['TN-2420'], 9: 3},
  {1: 2400, 2: 80, 3: 95, 4: 606, 5: 70, 6: 9},
  {1: 900, 2: 30, 3: 98, 4: 220, 5: 30, 6: 9},
  {0: m.EVENT, 1: m.EV_ORDER_REQUEST, 2: 0, 3: 'demo-01-e0', 5: m.BY_AUTOMATIC},
  {0: m.USAGE, 1: 2100000, 2: 0},
]
print('device: building %d frames on MicroPython' % len(msgs))
for i, p in enumerate(msgs):
    out.write(wire.pack(key, 'demo-01', i + 1, p))
print('device: done')
"""


def micropython():
    sys.path.insert(0, str(ROOT / "tests"))
    from mputil import micropython_bin
    return micropython_bin()


def main_demo(argv):
    ap = argparse.ArgumentParser(prog="consumables demo", description=__doc__)
    ap.parse_args(argv)
    key = secrets.token_bytes(32)
    env = dict(os.environ, MICROPYPATH=str(ROOT))
    p = subprocess.run([micropython(), "-X", "heapsize=64K", "-c", DEVICE_SCRIPT, key.hex()],
                       capture_output=True, cwd=ROOT, env=env, timeout=60)
    if p.returncode:
        print("demo: MicroPython failed: %s" % p.stderr.decode(errors="replace"), file=sys.stderr)
        return 1
    stream = p.stdout
    deframer = framing.Deframer()
    keys = {b"demo-01": key}
    good = bad = 0
    chunks = deframer.feed(stream)
    # a forgery: a well-formed frame claiming to be demo-01, made without its key
    from protocol import wire
    forged = wire.unframe(wire.pack(secrets.token_bytes(32), "demo-01", 6, {0: 3, 1: 2, 2: 0, 3: "x", 5: 1}))
    for chunk in chunks + [forged]:
        try:
            msg = codec.decode_chunk(chunk, keys.get)
            good += 1
            print("host:   " + json.dumps(msg.to_json()))
        except ProtocolError as e:
            if chunk.startswith(b"device"):
                print("text:   " + chunk.decode(errors="replace").strip())
                continue
            bad += 1
            print("host:   rejected %s: %s" % (type(e).__name__, e))
    print("demo: %d messages verified, %d rejected, %d bytes on the wire" % (good, bad, len(stream)))
    return 0 if good == 5 and bad == 1 else 1
