"""`consumables demo`: the whole system on a virtual board, live.

1. starts a virtual board (the MicroPython unix port behind a pty) with the real firmware,
2. deploys it with mpremote (`consumables deploy`), provisioning a fresh key,
3. starts the bridge on the board's serial line, forwarding to a jsonl uplink,
4. shows the monitor while a toner cartridge runs down over an accelerated month:
   the reminder fires, the automatic order is placed exactly once, the "supplier" (this
   demo) answers with order-status commands and delivers: the world is refilled, the
   device detects the refill, and usage is metered throughout.

It ends with a checked summary and exits non-zero if any expectation failed.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from host_tools import monitor
from host_tools.rig import Rig, RigError, events
from host_tools.store import StoreError

MONTH = 30 * 86400


def summarize(msgs):
    orders = events(msgs, "order_request")
    keys = sorted({m.get("key") for m in orders})
    usage = [m["consumed_milli"] for m in msgs if m.get("type") == "usage"]
    seqs = [m["seq"] for m in msgs]
    return {
        "messages": len(msgs),
        "levels": sum(1 for m in msgs if m.get("type") == "level"),
        "reminders": len(events(msgs, "low_soon")),
        "orders": len(orders),
        "order_keys": keys,
        "refills": len(events(msgs, "refill_detected")),
        "usage_reports": len(usage),
        "usage_monotonic": all(a <= b for a, b in zip(usage, usage[1:])),
        "usage_last_units": (usage[-1] / 1000.0) if usage else None,
        "duplicates": len(seqs) - len(set(seqs)),
    }


def story_line(m):
    t = m.get("type")
    if t == "hello":
        return "hello: %s, %s, capacity %s, refills %s, consent %s" % (
            m.get("sku"), m.get("model"), m.get("capacity"), m.get("refills"), m.get("consent"))
    if t == "event":
        k = m.get("kind_name")
        if k == "low_soon":
            return "reminder: runs out in about %s h" % m.get("value")
        if k == "order_request":
            return "ORDER requested (%s), idempotency key %s" % (
                "automatic" if m.get("trigger") == 1 else "button", m.get("key"))
        if k == "refill_detected":
            return "refill detected: %s units, episode %s" % (m.get("value"), m.get("episode"))
        return "event %s %s" % (k, m.get("value"))
    if t == "usage":
        return "usage: %.1f units consumed in total" % (m["consumed_milli"] / 1000.0)
    return None


def main_demo(argv=None):
    ap = argparse.ArgumentParser(prog="consumables demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", help="keep everything here (default: a new temp dir)")
    ap.add_argument("--speed", type=float, default=60000, help="simulated seconds per real second "
                    "(default 60000: a month in about 43 s)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=240, help="give up after this many real seconds")
    ap.add_argument("--no-live", action="store_true", help="plain log lines instead of the live table")
    args = ap.parse_args(argv)
    console = Console()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="consumables-demo-"))
    story = []

    def say(text):
        story.append("%5.1fs  %s" % (time.monotonic() - t0, text))
        if args.no_live:
            console.print(story[-1])

    t0 = time.monotonic()
    rig = Rig(work, speed=args.speed, seed=args.seed, consent=4, log=lambda m: say(m))
    ok = False
    try:
        say("work directory %s" % work)
        rig.start_board()
        rig.deploy()
        rig.start_bridge()
        ok = run_story(rig, args, console, say, story, t0)
    except (RigError, StoreError, OSError) as e:
        console.print("[red]demo failed: %s[/red]" % e)
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        rig.stop()
    s = summarize(rig.messages())
    console.print(Panel(json.dumps(s, indent=1), title="supplier side: what arrived"))
    checks = [("exactly one automatic order", s["orders"] == 1 and len(s["order_keys"]) == 1),
              ("at least one reminder", s["reminders"] >= 1),
              ("refill detected", s["refills"] >= 1),
              ("usage metered and monotonic", s["usage_reports"] >= 1 and s["usage_monotonic"]),
              ("no duplicate messages", s["duplicates"] == 0)]
    for name, good in checks:
        console.print(("[green]PASS[/green] " if good else "[red]FAIL[/red] ") + name)
    console.print("files kept in %s (uplink.jsonl, bridge.sqlite, bridge.log)" % work)
    return 0 if ok and all(g for _, g in checks) else 1


def view(db, story):
    """The live screen: the monitor's table (once the bridge has created its database)
    above the last lines of the story."""
    try:
        devices, status = monitor.snapshot(str(db))
        table = monitor.render(devices, status)
    except StoreError:
        table = Text("waiting for the bridge to start...")
    return Group(table, Panel(Text("\n".join(story[-12:])), title="what happened"))


def run_story(rig, args, console, say, story, t0):
    seen = 0
    delivered = False
    placed_at = None
    refill_seen_at = None
    live = None if args.no_live else Live(console=console, refresh_per_second=4, transient=False)
    if live:
        live.start()
    try:
        while time.monotonic() - t0 < args.timeout:
            msgs = rig.messages()
            for m in msgs[seen:]:
                line = story_line(m)
                if line:
                    say(line)
                if m.get("type") == "event" and m.get("kind_name") == "order_request" and placed_at is None:
                    placed_at = time.monotonic()
                    rig.send("order-status", m["key"], "placed")
                    say("supplier: order %s placed" % m["key"])
                if m.get("type") == "event" and m.get("kind_name") == "refill_detected":
                    refill_seen_at = refill_seen_at or time.monotonic()
            seen = len(msgs)
            if placed_at and not delivered and time.monotonic() - placed_at > 6:
                # the parcel arrives about three simulated days later: the customer swaps it in
                rig.world("refill")
                key = [m for m in msgs if m.get("kind_name") == "order_request"][0]["key"]
                rig.send("order-status", key, "delivered")
                delivered = True
                say("supplier: delivered; the new cartridge is in")
            if refill_seen_at and time.monotonic() - refill_seen_at > 4 and any(
                    m.get("type") == "usage" for m in msgs[msgs.index(next(
                        x for x in msgs if x.get("kind_name") == "refill_detected")):]):
                return True
            if live:
                live.update(view(rig.db, story))
            time.sleep(0.25)
        say("timed out")
        return False
    finally:
        if live:
            live.stop()
