"""Heap and time per cycle of the complete agent on the MicroPython unix port, from .py
sources and from the .mpy files `consumables deploy` builds for the virtual board (same
mpy-cross flags: boards/virtual.json has no line tables), side by side.

Each run (tests/device/memrun.py): write the board's flash files, boot through
firmware/main.py's boot() (simulated HAL, manual clock, 10-min samples), the agent linked
by the real serial transport to the bridge at the UART's far end, in-process, which
verifies and acks every frame; then N cycles of read, filter, estimate, decide, encode,
store, send. Printed: heap in use before boot (the harness and the protocol modules),
after gc.collect() once booted, after warm-up and at the end (growth = end - warm), the
most one cycle allocates (garbage included; every cycle is followed by gc.collect(), as
in firmware/main.py's loop), the peak heap in use (gc.mem_alloc() at the end of the
busiest cycle, before its collection: live data plus that cycle's garbage, at the main
run's large heap), the time per cycle (collection included) at that heap and at a
board-sized one (--time-heap: collection then also runs inside the busy cycles; a larger
heap costs more per collection), the smallest heap that boots
and runs all cycles (bisected in 2 KB steps, confirmed over the full run), whether the
target, 64K, works, and the smallest heap in which the board also boots again from what
the run left (checkpoint, replay floor, outbox: a power cut or a watchdog reset) and runs
on.

Two runtimes, side by side: the x86_64 unix port (64-bit: pointers, object headers and GC
blocks twice an ESP32's) and the ESP32-shaped build of tests/mp32 (MicroPython v1.28.0's unix
port, -m32 with single-precision floats; built by scripts/setup, skipped with a note if missing).

  python tests/benchmarks/bench_memory.py [--cycles 10000] [--heap 1024K] [--time-heap 128K] [--bisect-cycles 2000] [--no-32] [--board virtual]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests/device"))
from mputil import micropython_bin, mp32_cmd  # noqa: E402
import memrun  # noqa: E402  (its KEY; the run itself is on MicroPython)
from mptutil import agent_flash  # noqa: E402  (the board's flash files, written from the host)

DRIVER = r"""
import gc, sys
sys.path.insert(0, "")   # modules are found as on a board: "firmware/agent.mpy", relative to /
gc.collect()
import memrun            # tests/device/memrun.py: boot, the bridge at the UART's far end, cycles
gc.collect()
code = gc.mem_alloc()
a, tr = memrun.boot("")  # the flash is the working directory, as a board's is its root
boot = gc.mem_alloc()
# (few names of its own: each is a qstr in the heap the agent is measured in)
print("RESULT", code, boot, *memrun.run(a, int(sys.argv[1])))
"""


def run(mp, src, heap, cycles, board=None):
    """src: firmware/, protocol/ and memrun (.py or .mpy). They are copied into a fresh
    directory, the board's flash, beside its files (board.json, provision.json, sim.json)
    and the driver, and MicroPython runs there: every path the agent keeps is as short as
    on a board and none depends on where the host keeps its temp files (a few bytes more
    of path in each kept string moved where the heap fragments)."""
    return runs(mp, src, heap, [cycles], board)[0]


def runs(mp, src, heap, cycles, board=None):
    """As run(), booting the same flash once per entry of cycles (a list): each boot after
    the first is a reboot from what the one before left (checkpoint, outbox, replay
    floor), as after a power cut or a watchdog reset. A list of results, one per boot; it
    stops at the first that fails."""
    flash = Path(tempfile.mkdtemp(prefix="benchmem-"))
    try:
        for pkg in ("firmware", "protocol"):
            shutil.copytree(Path(src) / pkg, flash / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        mr = Path(src) / "memrun.mpy"
        shutil.copy(mr if mr.exists() else ROOT / "tests/device/memrun.py", flash)
        (flash / "drv.py").write_text(DRIVER)
        agent_flash(str(flash) + "/", memrun.KEY, str(board or ROOT / "boards/virtual.json"))
        env = dict(os.environ, MICROPYPATH=".frozen")
        out = []
        for n in cycles:
            p = subprocess.run(mp + ["-X", "heapsize=" + heap, "drv.py", str(n)],
                               capture_output=True, text=True, env=env, cwd=str(flash), timeout=900)
            if os.environ.get("BENCH_DEBUG"):
                print(p.stdout[-3000:], p.stderr[-3000:])
            r = [[int(x) for x in line.split()[1:]] for line in p.stdout.splitlines()
                 if line.startswith("RESULT")]
            out.append(r[0] if r else (p.stdout + p.stderr).strip().splitlines()[-1:])
            if not r:
                break
        return out
    finally:
        shutil.rmtree(flash, ignore_errors=True)


def build_mpy(dest, board="virtual"):
    """The .mpy files `consumables deploy` puts on `board` (same compiler flags), in dest."""
    from host_tools import deploy
    lines = json.loads(deploy.board_file(board, ROOT).read_text())["memory"].get("source_lines", True)
    with tempfile.TemporaryDirectory() as cache:
        for remote, data in deploy.build(ROOT, cache, lines=lines).items():
            out = Path(dest) / remote.lstrip("/")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
    # the run's own code (tests/device/memrun.py) compiled the same way: it shares the heap
    subprocess.run(deploy.mpy_cross_cmd() + deploy.mpy_flags(lines)
                   + ["-s", "memrun.mpy", "-o", str(Path(dest) / "memrun.mpy"),
                      str(ROOT / "tests/device/memrun.py")], check=True)


def ok(r):
    return len(r) == 7 and isinstance(r[0], int)


def all_ok(rs):
    return all(ok(r) for r in rs)


def smallest_heap(mp, src, cycles, lo=32, hi=256, step=2, board=None, confirm=None):
    """Bisect the smallest heap (KB, multiple of step) that boots and runs `cycles` cycles
    (a list: a reboot per entry after the first, see runs()); mp: a command (list).
    confirm: longer cycles the result must also run, raised a step at a time until it does."""
    if not all_ok(runs(mp, src, "%dK" % hi, cycles, board)):
        return None
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if all_ok(runs(mp, src, "%dK" % mid, cycles, board)):
            hi = mid
        else:
            lo = mid
    while confirm and hi <= 256 and not all_ok(runs(mp, src, "%dK" % hi, confirm, board)):
        hi += step
    return hi


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10000)
    ap.add_argument("--heap", default="1024K", help="heap of the main run (figures): large, so no collection runs inside a cycle")
    ap.add_argument("--time-heap", default="128K",
                    help="heap of a second run for the time per cycle: board-sized, so collections run inside the busy cycles")
    ap.add_argument("--bisect-cycles", type=int, default=2000,
                    help="cycles per bisection run (the result is confirmed with --cycles)")
    ap.add_argument("--no-32", action="store_true", help="skip the 32-bit (ESP32-shaped) runtime")
    ap.add_argument("--board", default="virtual", help="a board file in boards/ (default: virtual)")
    a = ap.parse_args()
    runtimes = [("64-bit", [micropython_bin()])]
    m32 = None if a.no_32 else mp32_cmd()
    if m32:
        runtimes.append(("32-bit", m32))
    elif not a.no_32:
        print("(32-bit runtime unavailable: run tests/mp32/setup; 64-bit figures only)")
    bd = ROOT / "boards" / (a.board + ".json")
    tmp = tempfile.mkdtemp(prefix="mpy-")
    try:
        build_mpy(tmp)
        cols = {}
        names = []
        for rt, mp in runtimes:
            for kind, src in (("py", ROOT), ("mpy", Path(tmp))):
                name = "%s %s" % (kind, rt)
                names.append(name)
                r = run(mp, src, a.heap, a.cycles, bd)
                mn = smallest_heap(mp, src, [a.bisect_cycles], board=bd, confirm=[a.cycles])
                at64 = run(mp, src, "64K", a.cycles, bd)
                small = run(mp, src, a.time_heap, a.cycles, bd)
                # a reboot from what the run left (checkpoint, replay floor, outbox)
                mr = smallest_heap(mp, src, [a.bisect_cycles, 1000], lo=(mn or 32) - 2, board=bd,
                                   confirm=[a.cycles, 2000])
                cols[name] = (r, mn, at64, small, mr)
        rows = (("heap before boot (B)", 0), ("heap after boot (B)", 1), ("most allocated in a cycle (B)", 4),
                ("peak heap, garbage incl. (B)", 6),
                ("growth over run (B)", None), ("time per cycle at %s (us)" % a.heap, 5))
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
        print(fmt % ("time per cycle at %s (us)" % a.time_heap, *[
            str(cols[n][3][5]) if ok(cols[n][3]) else "failed" for n in names]))
        print(fmt % ("smallest working heap", *[
            "%dK" % cols[n][1] if cols[n][1] else ">256K" for n in names]))
        print(fmt % ("%d cycles at 64K (target)" % a.cycles, *[
            "ok" if ok(cols[n][2]) else "fails" for n in names]))
        print(fmt % ("smallest heap for a reboot", *[
            "%dK" % cols[n][4] if cols[n][4] else ">256K" for n in names]))
        for n in names:
            if not ok(cols[n][0]):
                print("%s failed at heap %s: %s" % (n, a.heap, cols[n][0]))
        print("(board %s; bytes of GC heap; 64-bit = the x86_64 unix port, 32-bit = the same port built "
              "-m32 with float32 (tests/mp32), an ESP32's word size; figures at heap %s, %d cycles; "
              "growth = end - after %d cycles; every cycle is followed by gc.collect(), as in "
              "firmware/main.py; the smallest working heap is what the agent needs)" % (
                  a.board, a.heap, a.cycles, min(1000, a.cycles // 2)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
