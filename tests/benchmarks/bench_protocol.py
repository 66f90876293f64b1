"""Protocol benchmark: sizes beside JSON and SenML-CBOR, MicroPython encode/decode cost,
host decode+verify throughput. Run: .venv/bin/python tests/benchmarks/bench_protocol.py
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cbor2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from host_tools import codec  # noqa: E402
from mputil import micropython_bin  # noqa: E402
from protocol import cbor, cose, framing, messages, schema, wire  # noqa: E402

VEC = json.loads((ROOT / "protocol/vectors/vectors.json").read_text())
KEY = bytes.fromhex(VEC["key_hex"])
UNITS = {"remaining": "page", "fill_pct": "%", "rate_per_day": "page/d", "tte_h": "h", "tte_err_h": "h",
         "quality": "/10", "battery_pct": "%EL"}


def senml_cbor(device, payload):
    """The same information as a SenML pack (RFC 8428) in CBOR, the usual IoT baseline."""
    name, fields = schema.to_named(payload)
    recs = []
    for i, (k, v) in enumerate(fields.items()):
        r = {0: k, 2: v} if isinstance(v, int) else {0: k, 3: str(v)}
        if k in UNITS:
            r[1] = UNITS[k]
        if i == 0:
            r[-2] = "urn:dev:%s:%s:" % (device, name)
        recs.append(r)
    return cbor2.dumps(recs)


def as_json(device, seq, payload):
    name, fields = schema.to_named(payload)
    d = {"device": device, "seq": seq, "type": name}
    d.update(fields)
    return json.dumps(d, separators=(",", ":")).encode()


MP_SCRIPT = r"""
import gc, time, json
from protocol import cbor, cose, wire
KEY = bytes(range(32))
P = %r
N = %d
def alloc(fn):
    gc.collect(); gc.disable()
    a = gc.mem_alloc(); fn(); b = gc.mem_alloc()
    gc.enable()
    return b - a
frame = wire.pack(KEY, 'tnr-0001', 1, P)
chunk = wire.unframe(frame)
kf = lambda k: KEY
res = {}
res['alloc_payload'] = alloc(lambda: cbor.dumps(P))
res['alloc_frame'] = alloc(lambda: wire.pack(KEY, 'tnr-0001', 1, P))
res['alloc_unpack'] = alloc(lambda: wire.unpack(chunk, kf))
t = time.ticks_us()
for i in range(N): cbor.dumps(P)
res['us_payload'] = time.ticks_diff(time.ticks_us(), t) / N
t = time.ticks_us()
for i in range(N): wire.pack(KEY, 'tnr-0001', i, P)
res['us_frame'] = time.ticks_diff(time.ticks_us(), t) / N
t = time.ticks_us()
for i in range(N): wire.unpack(chunk, kf)
res['us_unpack'] = time.ticks_diff(time.ticks_us(), t) / N
print(json.dumps(res))
"""


def mp_costs(payload, n):
    env = dict(os.environ, MICROPYPATH=str(ROOT))
    out = subprocess.run([micropython_bin(), "-X", "heapsize=64K", "-c", MP_SCRIPT % (payload, n)],
                         capture_output=True, text=True, cwd=ROOT, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(n_mp=300, n_host=20000):
    print("== bytes per message (payload / COSE envelope / frame on the wire) vs JSON and SenML-CBOR")
    print("%-24s %7s %8s %6s %6s %7s %6s" % ("message", "payload", "envelope", "frame", "JSON", "SenML", "JSON/f"))
    for v in VEC["vectors"]:
        payload = cbor.loads(bytes.fromhex(v["payload_hex"]))
        s = v["sizes"]
        j = len(as_json(VEC["kid"], v["seq"], payload))
        sm = len(senml_cbor(VEC["kid"], payload))
        flag = "  <= budget 24/64" if v["name"].startswith("level") else ""
        print("%-24s %7d %8d %6d %6d %7d %6.1fx%s" % (v["name"], s["payload"], s["envelope"], s["frame"], j, sm,
                                                    j / s["frame"], flag))
    level = cbor.loads(bytes.fromhex(VEC["vectors"][1]["payload_hex"]))
    print()
    print("== MicroPython (unix port, -X heapsize=64K): per level report, %d iterations" % n_mp)
    c = mp_costs(level, n_mp)
    print("encode payload   %8.1f us   %5d bytes allocated" % (c["us_payload"], c["alloc_payload"]))
    print("encode+MAC+frame %8.1f us   %5d bytes allocated" % (c["us_frame"], c["alloc_frame"]))
    print("deframe+verify+decode %6.1f us %4d bytes allocated" % (c["us_unpack"], c["alloc_unpack"]))
    print()
    print("== host decode+verify (cbor2 + hmac), one core")
    frames = [wire.unframe(wire.pack(KEY, "tnr-0001", i, level)) for i in range(1000)]
    kf = {b"tnr-0001": KEY}.get
    t = time.perf_counter()
    for i in range(n_host):
        codec.decode_chunk(frames[i % 1000], kf)
    host = n_host / (time.perf_counter() - t)
    t = time.perf_counter()
    m = n_host // 10
    for i in range(m):
        wire.unpack(frames[i % 1000], kf)
    pure = m / (time.perf_counter() - t)
    line = 115200 / 10 / len(frames[0])
    print("host codec (cbor2)      %9.0f frames/s" % host)
    print("shared codec on CPython %9.0f frames/s  (host codec is %.1fx faster)" % (pure, host / pure))
    print("115200-baud line carries %6.0f level frames/s: one core decodes %.0fx line rate" % (line, host / line))


if __name__ == "__main__":
    main()
