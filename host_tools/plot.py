"""consumables plot DEVICE -o level.png: level history, forecast band, events.

Draws the fill level the device reported over time, the forecast from its latest report
(time-to-empty ± error: a line to the predicted empty date inside a shaded band), and
vertical markers for low-soon reminders, order requests, refills, sensor faults and
order-status updates sent to the device. Uses matplotlib's Agg backend: no display needed.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from datetime import datetime, timedelta

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


def _dt(ts):
    return datetime.fromtimestamp(ts)


def plot(store: Store, device: str, out: str) -> dict:
    """Write the PNG; returns figures for tests (points, predicted empty time or None)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    hist = store.history(device, ("level", "event"))
    levels = [h for h in hist if h["type"] == "level"]
    if not levels:
        raise PlotError("no level reports for %s in %s" % (device, store.path))
    events = [h for h in hist if h["type"] == "event"]

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
    ax.set_title("%s: level history and forecast" % device)
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
    return {"points": len(levels), "events": len(events), "empty": empty}


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
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        store = Store(a.db, readonly=True)
        try:
            info = plot(store, a.device, a.output)
        finally:
            store.close()
    except (StoreError, PlotError, sqlite3.Error) as e:
        print("%s: error: %s" % (prog, e), file=sys.stderr)
        return 2
    print("wrote %s (%d reports, %d events%s)" % (a.output, info["points"], info["events"],
          ", empty ≈ %s" % info["empty"].strftime("%Y-%m-%d %H:%M") if info["empty"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main_plot())
