"""Load benchmark: simulated devices over UDP loopback against one bridge process.

Both modes of host_tools/loadgen.py at a CI-friendly size (about 45 s in all):
  steady  300 devices, one report each every 3 s, for 8 s (100 msg/s) -> must lose nothing
  ramp    300 devices, offered rate x1.3 per 3 s step from 100 msg/s, <= 35 s, until a
          step loses a message or its send->ack p99 exceeds 1 s
Group commit side by side (--group-commit, about 130 s): the same 1,000 devices offering
5,000 msg/s for 8 s against the bridge with group commit (default), with group commit and
--quiet (no log line per message), the same with the UDP link waiting 2 ms for company
(--group-wait 2), and with one COMMIT per frame (--group-commit 1, the path before group
commit), then 10,000 devices (one report each every 5 s, 2,000 msg/s).
Each row also shows the bridge's and the generator's CPU per message and how busy the whole
machine was (other processes included), and a last line says what limits the run.
Full size: python -m host_tools.loadgen --devices 1000 --seconds 20   (and --ramp).
Run: .venv/bin/python tests/benchmarks/bench_load.py [--devices N] [--group-commit]
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from host_tools import loadgen  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--group-commit", action="store_true", help="only the group commit comparison")
    a = ap.parse_args()
    if a.group_commit:
        return group_commit()
    st = loadgen.steady(devices=a.devices, seconds=8.0, interval=a.devices / 100.0)
    print("== steady")
    print(loadgen.describe(st))
    print("bridge counters:", json.dumps(st["bridge_counters"]))
    print("\n== ramp")
    out = loadgen.ramp(devices=a.devices, start=100, factor=1.3, step_s=3.0, budget_s=35.0,
                       log=lambda s: print(loadgen.describe(s), flush=True))
    best = out["sustained"]
    print("stopped by %s; highest zero-loss rate: %s" % (
        out["stopped_by"], "none" if best is None else "%.0f msg/s (acked %.1f/s, send->ack p99 %s ms, "
        "x%s one 115200-baud line)" % (best["offered_msg_s"], best["rate_msg_s"], best["send_ack_p99_ms"],
                                        best["x_serial_line"])))
    print("bridge RSS peak %s kB" % out["bridge_rss_peak_kb"])
    if a.json:
        print(json.dumps({"steady": st, "ramp": out}, indent=1))
    return 0 if st["lost"] == 0 and st["uplink_missing"] == 0 and not st["uplink_dups"] else 1


def group_commit():
    rows = []
    for label, args in (("group commit (<= 256 frames per COMMIT)", []),
                        ("group commit, --quiet (no line per frame)", ["--quiet"]),
                        ("group commit, --quiet --group-wait 2", ["--quiet", "--group-wait", "2"]),
                        ("one COMMIT per frame (--group-commit 1)", ["--group-commit", "1"])):
        st = loadgen.steady(devices=1000, seconds=8.0, interval=0.2, drain=10.0, bridge_args=args)
        rows.append((label, st))
        print("== %s\n%s" % (label, loadgen.describe(st)), flush=True)
    st = loadgen.steady(devices=10000, seconds=8.0, interval=5.0, drain=15.0, bridge_args=["--quiet"])
    rows.append(("10,000 devices, group commit, --quiet", st))
    print("== 10,000 devices, group commit, --quiet\n%s" % loadgen.describe(st), flush=True)
    print("\n%-42s %7s %8s %6s %7s %7s %8s %8s %9s" % ("1,000 devices x 5 msg/s (10,000: x 0.2)", "offered",
                                                      "acked/s", "lost", "ack p50", "ack p99", "bridge", "loadgen",
                                                      "machine"))
    print("%-42s %7s %8s %6s %7s %7s %8s %8s %9s" % ("", "msg/s", "", "", "ms", "ms", "us/msg", "us/msg", "busy"))
    for label, st in rows:
        print("%-42s %7.0f %8.1f %6d %7s %7s %8s %8s %8s%%" % (
            label, st["offered_msg_s"], st["rate_msg_s"], st["lost"], st["send_ack_p50_ms"], st["send_ack_p99_ms"],
            st.get("bridge_cpu_us_per_msg"), st.get("loadgen_us_per_msg"), st.get("machine_busy_pct")))
    gc = rows[1][1]
    if gc.get("bridge_cpu_us_per_msg") and gc.get("loadgen_ceiling_msg_s"):
        print("what limits this machine (%s cores, shared): the bridge needs %s us of CPU per message (all its "
              "threads; one core of it: ~%.0f msg/s), the generator %s us (~%s msg/s on one core); the machine "
              "was %s%% busy during that run, other processes included"
              % (gc.get("machine_cores"), gc["bridge_cpu_us_per_msg"], 1e6 / gc["bridge_cpu_us_per_msg"],
                 gc["loadgen_us_per_msg"], gc["loadgen_ceiling_msg_s"], gc.get("machine_busy_pct")))
    # the one-COMMIT-per-frame row is the old path, shown for comparison: its losses are expected
    return 0 if all(st["lost"] == 0 for label, st in rows if not label.startswith("one COMMIT")) else 1


if __name__ == "__main__":
    sys.exit(main())
