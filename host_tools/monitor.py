"""consumables monitor: a live table of devices and bridge counters.

Reads the bridge's SQLite store read-only (mode=ro: the monitor can never disturb the
bridge) and the status file the bridge rewrites every second (DB.status.json) for the
counters. `--once` prints one snapshot and exits.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import time

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from host_tools.store import NotReady, Store, StoreError, status_path
from protocol import messages, schema

COUNTER_ORDER = ("frames", "stored", "duplicates", "acks", "forwarded", "queued", "uplink_errors", "noise",
                 "bad_crc", "bad_mac", "unknown_device", "replay", "malformed", "seq_jump", "source_limited",
                 "bad_commands", "store_errors", "downlinks", "rekeys", "threads_restarted")


def shown(value) -> Text:
    """A device id or link as plain text: never rich markup, and any character outside
    printable ASCII escaped (\\x1b, \\n, ...), so an id from the database cannot move the
    cursor, recolour or clear the terminal, or fake a row."""
    s = value if isinstance(value, str) else str(value)
    if not all(" " <= c <= "~" for c in s):
        s = s.encode("ascii", "backslashreplace").decode("ascii")
        s = "".join(c if " " <= c <= "~" else "\\x%02x" % ord(c) for c in s)
    return Text(s)


def ago(ts, now=None) -> str:
    if not ts:
        return "never"
    s = max(0, (now or time.time()) - ts)
    if s < 90:
        return "%ds ago" % s
    if s < 5400:
        return "%dm ago" % (s // 60)
    if s < 2 * 86400:
        return "%.1fh ago" % (s / 3600)
    return "%.1fd ago" % (s / 86400)


def hours(h) -> str:
    if h is None:
        return "-"
    return "%.1fd" % (h / 24) if h >= 48 else "%dh" % h


def tte_text(level: dict) -> str:
    tte = level.get("tte_h")
    if tte is None:
        return "-"
    err = level.get("tte_err_h")
    return hours(tte) + (" ± " + hours(err) if err is not None else "")


def read_status(db) -> dict | None:
    try:
        return json.loads(status_path(db).read_text())
    except (OSError, ValueError):
        return None


SILENT_S = 3 * 3600   # no frame for this long (3 report periods of an hour): "silent"


def registered(path) -> list:
    """Device ids in the registry at path (None: none), or [] when it cannot be read: a
    deployed device the bridge never heard from is shown as silent."""
    if path is None:
        return []
    try:
        from host_tools import registry
        return sorted(registry.load(path)["devices"])
    except Exception:   # no registry, unreadable: the monitor still shows what the DB has
        return []


def snapshot(db, registry=None) -> tuple[list, dict | None]:
    store = Store(db, readonly=True)
    try:
        devices = store.devices()
    finally:
        store.close()
    seen = {d["device"] for d in devices}
    devices += [{"device": dev, "last_seen": None} for dev in registered(registry) if dev not in seen]
    return devices, read_status(db)


def screen(db, registry=None):
    """The live view: a bridge that is still creating its database is waited for."""
    try:
        return render(*snapshot(db, registry))
    except NotReady as e:
        return Text(str(e))


def tail(link: str, n: int) -> str:
    """A link in at most n characters: its kind and its end, where the port's or the
    peer's own name is ("serial:.../vb"), not its front."""
    if len(link) <= n:
        return link
    kind = link.split(":", 1)[0] + ":" if ":" in link else ""
    return kind + "..." + link[len(link) - max(1, n - len(kind) - 3):]


COLUMNS = (("device", "left"), ("remaining", "right"), ("fill", "right"), ("rate/day", "right"),
           ("empty in", "right"), ("consent", "left"), ("last seen", "right"), ("queue", "right"),
           ("cmds", "right"), ("link", "left"))
SPARE = ("link", "cmds", "queue", "rate/day", "remaining")   # left out first on a narrow terminal


class DeviceTable:
    """The device table, laid out when it is printed, for the terminal's width. A rich
    table wider than the terminal has every column shortened, the device id among them
    ("toner-…"). Here the link (the longest column, read least) is cut from its front to
    what is left; on a terminal too narrow for it, it and then the SPARE columns are left
    out, in that order, so the device, its fill, forecast, consent and last report stay
    whole (an 80-column terminal keeps those and "remaining")."""

    def __init__(self, devices: list, now: float):
        self.devices, self.now = devices, now

    def __rich_console__(self, console, options):
        w = options.max_width
        wide = options.update_width(1 << 16)   # (a measure at w is clamped to w)

        def width(t):
            return console.measure(t, options=wide).maximum

        for n in range(1, len(SPARE) + 1):
            t = self.table(SPARE[:n])
            if width(t) <= w:
                break
        if n == 1:        # everything but the link fits: the link gets what is left
            room = w - width(t) - 3
            if room >= 12:
                t = self.table((), room)
                over = width(t) - w
                if over > 0:
                    t = self.table((), room - over)
        yield t

    def table(self, leave_out=(), link_width=0):
        t = Table(title="smart-consumables bridge", box=box.SIMPLE_HEAVY, expand=False)
        cols = [c for c in COLUMNS if c[0] not in leave_out]
        for col, just in cols:
            t.add_column(col, justify=just, no_wrap=True)
        now = self.now
        for d in self.devices:
            lvl, hello = d.get("level") or {}, d.get("hello") or {}
            unit = messages.UNITS[hello["unit"]] if isinstance(hello.get("unit"), int) and \
                hello["unit"] < len(messages.UNITS) else ""
            fill = lvl.get("fill_pct")
            style = "red" if fill is not None and fill <= 10 else ("yellow" if fill is not None and fill <= 25 else "")
            consent = d.get("consent")
            last = d.get("last_seen")
            quiet = not last or now - last > SILENT_S
            cells = {"device": shown(d["device"]),
                     "remaining": "%s %s" % (lvl["remaining"], unit) if "remaining" in lvl else "-",
                     "fill": Text("%d%%" % fill, style=style) if fill is not None else "-",
                     "rate/day": str(lvl["rate_per_day"]) if lvl.get("rate_per_day") is not None else "-",
                     "empty in": tte_text(lvl),
                     "consent": schema.CONSENT_NAMES[consent] if isinstance(consent, int) and 0 <= consent <= 4
                     else "?",
                     "last seen": Text(("silent, " if quiet else "") + ago(last, now), style="red" if quiet else ""),
                     "queue": str(d.get("queue", 0)),
                     "cmds": str(d.get("downlink_pending", 0)),
                     "link": shown(tail(d.get("link") or "-", link_width or 1000))}
            t.add_row(*[cells[c] for c, _ in cols])
        return t


def render(devices: list, status: dict | None, now: float | None = None):
    now = now or time.time()
    t = DeviceTable(devices, now)
    if status is None:
        foot = Text("bridge status: no status file (bridge not running?)", style="yellow")
    else:
        c = status.get("counters", {})
        age = now - status.get("updated_at", 0)
        parts = ["%s=%s" % (k, c[k]) for k in COUNTER_ORDER if k in c]
        head = "bridge pid %s, status %s" % (status.get("pid"), ago(status.get("updated_at"), now))
        foot = Text(head + ("  (STALE)" if age > 5 else "") + "\n" + "  ".join(parts),
                    style="yellow" if age > 5 else "")
        for u in status.get("uplinks", []):
            foot.append("\nuplink %s: queued %s%s" % (u["name"], u.get("queued"),
                                                      ", error: " + u["last_error"] if u.get("last_error") else ""))
    return Group(t, foot)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line and exit code 2, not usage + message
        print("%s: error: %s" % (self.prog, message), file=sys.stderr)
        raise SystemExit(2)


def main_monitor(argv=None) -> int:
    prog = "consumables monitor"
    p = _Parser(prog=prog, description="Live view of the devices behind a bridge.")
    p.add_argument("--db", default=os.environ.get("CONSUMABLES_DB", "bridge.sqlite"),
                   help="bridge database (default ./bridge.sqlite or $CONSUMABLES_DB)")
    p.add_argument("--registry", help="device registry, for devices that never spoke (default: as deploy)")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--interval", type=float, default=1.0, help="refresh period in seconds")
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    from host_tools.registry import registry_path
    a.registry = str(registry_path(a.registry))
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        if a.once:
            console.print(render(*snapshot(a.db, a.registry)))
            return 0
        # Ctrl-C and SIGTERM only raise a flag that the loop reads between refreshes. A
        # KeyboardInterrupt raised anywhere could land inside rich's lock (acquired, not yet
        # in its try), and Live's exit then waits forever for its refresh thread.
        stop = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.append(1))
        with Live(screen(a.db, a.registry), console=console, refresh_per_second=4) as live:
            due = time.monotonic() + a.interval
            while not stop:
                time.sleep(0.05)
                if time.monotonic() >= due:
                    live.update(screen(a.db, a.registry))
                    due = time.monotonic() + a.interval
        return 0
    except (StoreError, sqlite3.Error) as e:
        print("%s: error: %s" % (prog, e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main_monitor())
