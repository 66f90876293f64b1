"""A full deploy onto a virtual board, over a plain pty and over a line paced as a UART at
115200 baud (host_tools/board.py `baud=`: 8N1, 11,520 B/s each way, as a USB-UART bridge
carries it), side by side, against the agent's watchdog timeout (30 s unless a board file
sets power.wdt_ms). Deploy hard-resets the board and interrupts it in main.py's safe-boot
window first, so the watchdog is not running while it copies; the margin shows that a
board whose safe boot failed would still not be reset mid-copy.

  python tests/benchmarks/bench_deploy.py [--board virtual] [--baud 115200]
"""
import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from host_tools import deploy as dp  # noqa: E402
from host_tools.board import VirtualBoard  # noqa: E402

KEY = "0123456789abcdef" * 4
WDT_S = 30.0   # firmware/assemble.py: power.wdt_ms default


def one(tmp, board, baud):
    with VirtualBoard(tmp / "pty", tmp / "flash", speed=100, seed=1, baud=baud) as b:
        dp.deploy(b.pty_path, board, "toner-01", KEY, registry=str(tmp / "reg.json"),
                  cache=str(tmp / "cache"), log=lambda m: None)     # warm: the .mpy cache
        (tmp / "flash" / ".deploy.json").unlink()                  # a full copy again
        return dp.deploy(b.pty_path, board, "toner-01", KEY, registry=str(tmp / "reg.json"),
                         cache=str(tmp / "cache"), log=lambda m: None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--board", default="virtual")
    ap.add_argument("--baud", type=int, default=115200)
    a = ap.parse_args()
    rows = []
    for label, baud in (("pty (unpaced)", None), ("%d baud" % a.baud, a.baud)):
        with tempfile.TemporaryDirectory() as d:
            r = one(Path(d), a.board, baud)
        rows.append((label, r))
    wire = a.baud / 10.0
    print("%-16s %6s %8s %9s %12s %10s" % ("line", "files", "bytes", "seconds", "wire time", "of WDT 30s"))
    for label, r in rows:
        print("%-16s %6d %8d %9.1f %11.1fs %9.0f%%" % (label, r["files"], r["bytes"], r["seconds"],
                                                       r["bytes"] / wire, 100 * r["seconds"] / WDT_S))
    print("(wire time: the files' bytes alone at %d B/s; mpremote's raw-paste framing, the "
          "commands and their answers add to it; paced/unpaced = %.1fx)"
          % (wire, rows[1][1]["seconds"] / rows[0][1]["seconds"]))


if __name__ == "__main__":
    main()
