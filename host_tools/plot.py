"""consumables plot DEVICE -o level.png: level history, forecast band, events.

Draws the fill level the device reported over time, the forecast from its latest report
(time-to-empty ± error: a line to the predicted empty date inside a shaded band), and
vertical markers for low-soon reminders, order requests, refills, sensor faults and
order-status updates sent to the device. Uses matplotlib's Agg backend: no display needed.

An accelerated virtual board lives on a simulated clock (`--speed` simulated seconds per
real second): its month of reports reaches the bridge within seconds of wall time, and
its forecasts (time to empty, in its own hours) are simulated time. `--flash DIR` (the
board's flash directory: its world state file has the live speed) or `--speed X` draws
the history on that clock instead: a report received t seconds after the first one is
placed t × speed simulated seconds after it. Exact while the speed was not changed
during the run (the board keeps its clock running through power cuts).
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import struct
import sys
from datetime import datetime, timedelta
from pathlib import Path

from host_tools.store import Store, StoreError

EVENT_STYLE = {  # kind name -> (colour, legend label)
    "low_soon": ("orange", "low soon (reminder)"),
    "order_request": ("red", "order request"),
    "refill_detected": ("green", "refill"),
    "sensor_fault": ("grey", "sensor fault"),
    "consent_changed": ("purple", "consent changed"),
}


class PlotError(Exception):
    pass


def board_speed(flash) -> float:
    """A virtual board's live speed from its flash directory: the world state file
    (firmware/sensors/simstate.py: 8 doubles, [0] the live speed, then 8 uint32s), else
    sim.json's."""
    d = Path(flash)
    try:
        sim = json.loads((d / "sim.json").read_text())
    except (OSError, ValueError):
        raise PlotError("%s is not a virtual board's flash directory (no readable sim.json)" % d) from None
    try:
        raw = (d / sim.get("state", "world.bin")).read_bytes()
        if len(raw) != 8 * 8 + 8 * 4:
            raise struct.error("not simstate's layout")
        speed = struct.unpack_from("<d", raw, 0)[0]
    except (OSError, struct.error, TypeError):
        speed = sim.get("speed")
    if not isinstance(speed, (int, float)) or speed <= 0:
        raise PlotError("%s: no simulation speed (a manual clock cannot be drawn)" % d)
    return float(speed)


def plot(store: Store, device: str, out: str, speed: float | None = None) -> dict:
    """Write the PNG; returns figures for tests (points, predicted empty time or None,
    the x extent). speed: draw on the simulated clock of a board running that fast."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    hist = store.history(device, ("level", "event"))
    levels = [h for h in hist if h["type"] == "level"]
    if not levels:
        raise PlotError("no level reports for %s in %s" % (device, store.path))
    events = [h for h in hist if h["type"] == "event"]
    origin = levels[0]["received_at"]
    k = speed or 1.0

    def _dt(ts):  # wall time received -> where it goes on the plot's clock
        return datetime.fromtimestamp(origin + (ts - origin) * k)

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    xs = [_dt(h["received_at"]) for h in levels]
    ys = [h["fill_pct"] for h in levels]
    ax.plot(xs, ys, "-", color="tab:blue", marker="." if len(xs) < 200 else None, label="fill level")

    empty = None
    last = levels[-1]
    if last.get("tte_h") is not None:
        t0, y0 = xs[-1], ys[-1]
        tte, err = last["tte_h"], last.get("tte_err_h") or 0
        empty = t0 + timedelta(hours=tte)
        lo, hi = t0 + timedelta(hours=max(0, tte - err)), t0 + timedelta(hours=tte + err)
        ax.fill([t0, lo, hi], [y0, 0, 0], color="tab:blue", alpha=0.15, label="forecast ± error")
        ax.plot([t0, empty], [y0, 0], "--", color="tab:blue", label="forecast")
        ax.axvline(empty, color="black", linestyle=":", linewidth=1)
        ax.annotate("empty ≈ %s\n(± %s h)" % (empty.strftime("%Y-%m-%d %H:%M"), err), xy=(empty, 0),
                    xytext=(-150, 30), textcoords="offset points", fontsize=8)

    seen = set()
    for e in events:
        colour, label = EVENT_STYLE.get(e.get("kind_name"), ("black", str(e.get("kind_name"))))
        ax.axvline(_dt(e["received_at"]), color=colour, linewidth=1.2, alpha=0.8,
                   label=None if label in seen else label)
        seen.add(label)
    for d in store.sent_downlinks(device):
        if d["type"] == "order_status":
            ax.axvline(_dt(d["sent_at"]), color="brown", linestyle="-.", linewidth=1,
                       label=None if "order status" in seen else "order status")
            seen.add("order status")

    ax.set_ylim(0, 105)
    ax.set_ylabel("fill %")
    ax.set_title("%s: level history and forecast%s" % (
        device, " (simulated clock, x%g)" % speed if speed else ""))
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(out, format="png")
    except OSError as e:
        raise PlotError("cannot write %s: %s" % (out, e.strerror)) from None
    finally:
        plt.close(fig)
    hello = next((d["hello"] for d in store.devices() if d["device"] == device), None) or {}
    return {"points": len(levels), "events": len(events), "empty": empty, "span": xs[-1] - xs[0],
            "virtual": hello.get("board") == "virtual"}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line and exit code 2, not usage + message
        print("%s: error: %s" % (self.prog, message), file=sys.stderr)
        raise SystemExit(2)


def main_plot(argv=None) -> int:
    prog = "consumables plot"
    p = _Parser(prog=prog, description="Plot a device's level history and forecast.")
    p.add_argument("device")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--db", default=os.environ.get("CONSUMABLES_DB", "bridge.sqlite"),
                   help="bridge database (default ./bridge.sqlite or $CONSUMABLES_DB)")
    clock = p.add_mutually_exclusive_group()
    clock.add_argument("--flash", metavar="DIR", help="a virtual board's flash directory: draw on its simulated clock")
    clock.add_argument("--speed", type=float, help="draw on a simulated clock this many times faster than real time")
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        if a.speed is not None and a.speed <= 0:
            raise PlotError("--speed must be positive")
        speed = board_speed(a.flash) if a.flash else a.speed
        store = Store(a.db, readonly=True)
        try:
            info = plot(store, a.device, a.output, speed)
        finally:
            store.close()
    except (StoreError, PlotError, sqlite3.Error) as e:
        print("%s: error: %s" % (prog, e), file=sys.stderr)
        return 2
    print("wrote %s (%d reports, %d events%s)" % (a.output, info["points"], info["events"],
          ", empty ≈ %s" % info["empty"].strftime("%Y-%m-%d %H:%M") if info["empty"] else ""))
    if speed is None and info.get("virtual"):
        print("note: %s is a virtual board; if it ran accelerated, pass --flash DIR (its flash directory) or "
              "--speed X to draw it on its simulated clock" % a.device, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main_plot())
