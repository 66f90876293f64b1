"""Hardware-in-the-loop: the deployed firmware, the bridge and the supplier side together.

Runs against the virtual board by default; `pytest tests/hil --port /dev/ttyUSB0 --board
esp32-devkitc` runs the same checks on a real board (world commands then need a human or
a rig that drives the sensor, so those tests skip).
"""
import sqlite3
import time

import pytest

from host_tools.rig import events

pytestmark = pytest.mark.hil


def seqs(msgs):
    return [m["seq"] for m in msgs]


LEASE = 16   # firmware/outbox.py: a boot starts at the next multiple of LEASE


def assert_nothing_lost(msgs, device_dropped=None):
    """Exactly once, in order per device, and every sequence gap explained by design:

    - a reboot: the seq counter is leased in blocks of LEASE, so a boot starts at a block
      boundary and the rest of the previous block is skipped. The gap ends at that boot's
      hello, or, when a newer boot's hello superseded it (an outbox drop), it spans the
      block boundary; the part before the boundary is the skip. At most one such gap per
      boot whose hello is missing (the hellos' boot counter says how many);
    - every other missing seq is a message the outbox dropped by policy (old level reports
      when it or the flash is full, superseded hellos): they add up to at most the
      `dropped` count the device reports (hello 11 / usage 3), and every dropped message
      is missing somewhere;
    - order requests are never repeated, the usage counter never goes back.
    device_dropped: the device's own final count (Rig.dropped_on_device, from its flash), which
    the last report's count may trail: a report is built before the older level reports
    still queued behind the backlog are dropped.
    Returns the run's tally (see tally_line)."""
    s = seqs(msgs)
    assert len(s) == len(set(s)), "duplicates: %s" % sorted(x for x in s if s.count(x) > 1)
    assert s == sorted(s), "out of order"
    gaps = reboot = reboots = 0
    cand = []       # gaps across a block boundary not ending at a hello: (skip part, rest)
    prev = -1
    for m in msgs:
        q = m["seq"]
        if q > prev + 1:
            if m["type"] == "hello":
                reboots += 1
                reboot += q - prev - 1
            elif q - q % LEASE > prev:
                b = q - q % LEASE
                cand.append((b - prev - 1, q - b))
            else:
                gaps += q - prev - 1
        prev = q
    # boots whose hello was superseded (not delivered): the hellos' boot counter tells how many
    boots = {m["boot"] for m in msgs if m["type"] == "hello" and m.get("boot")}
    hidden = max(boots) - min(boots) + 1 - len(boots) if boots else 0
    cand.sort(reverse=True)        # the most generous choice: the longest skips are the reboots
    for i, (skip, rest) in enumerate(cand):
        if i < hidden:
            reboots += 1
            reboot += skip
            gaps += rest
        else:
            gaps += skip + rest
    reported = max([m.get("dropped") or 0 for m in msgs if m["type"] in ("hello", "usage")] or [0])
    dropped = max(reported, device_dropped or 0)
    assert gaps <= dropped, "lost: %d seqs missing outside reboots, the device dropped only %d" % (
        gaps, dropped)
    assert reported <= gaps + reboot, "device reports %d dropped, only %d seqs missing" % (
        reported, gaps + reboot)
    keys = [m["key"] for m in events(msgs, "order_request")]
    assert len(keys) == len(set(keys)), "order repeated: %s" % keys
    use = [m["consumed_milli"] for m in msgs if m["type"] == "usage"]
    assert use == sorted(use), "usage counter went back: %s" % use
    # created by the device = delivered + dropped by policy + lost (0, asserted above)
    return {"created": len(s) + dropped, "delivered": len(s), "duplicated": 0, "dropped": dropped,
            "lost": 0, "seq_span": s[-1] + 1 if s else 0, "reboot_skipped": reboot - (dropped - gaps),
            "hellos": len([m for m in msgs if m["type"] == "hello"]), "boots": reboots}


def tally_line(name, t, **extra):
    """One line of figures for a fault run (pytest -s shows it)."""
    t = dict(t, **extra)
    keys = ["created", "delivered", "duplicated", "dropped", "lost"]
    keys += sorted(k for k in t if k not in keys)
    line = "TALLY %s: " % name + ", ".join("%s %s" % (k, t[k]) for k in keys)
    print("\n" + line)
    return line


@pytest.fixture(scope="module")
def full(rig_factory):
    return rig_factory("full", consent=4)


def test_boot_hello_and_first_report_within_bound(full):
    t0 = time.monotonic()
    hello = full.wait_for(lambda ms: [m for m in ms if m["type"] == "hello"], 30, "hello")[0]
    assert hello["device"] == full.device_id and hello["consent"] == 4 and hello["capacity"] == 3000
    full.wait_for(lambda ms: [m for m in ms if m["type"] == "level"], 30, "first level report")
    assert time.monotonic() - t0 < 30


def test_levels_follow_the_simulated_truth(full):
    if full.real_port:
        pytest.skip("needs the simulated world")
    full.world("rate 0")
    for truth in (2200, 1400):
        full.world("level %d" % truth)
        n = len(full.messages())

        def close(ms, truth=truth):
            lv = [m for m in ms[n:] if m["type"] == "level"]
            return len(lv) >= 3 and all(abs(m["remaining"] - truth) <= 0.04 * 3000 for m in lv[-2:])
        full.wait_for(close, 60, "reports near %d" % truth)
    full.world("rate 100")


def test_power_cuts_and_bridge_kill_lose_nothing(full):
    if full.real_port:
        pytest.skip("power cuts need the virtual board")
    for i in range(3):
        time.sleep(1.5)
        full.power_cut(0.3)
    full.kill_bridge()  # SIGKILL mid-stream: the device keeps what is not acked
    time.sleep(3)
    full.start_bridge()
    n_hello = len([m for m in full.messages() if m["type"] == "hello"])
    full.wait_for(lambda ms: len([m for m in ms if m["type"] == "hello"]) >= min(n_hello, 4) and
                  [m for m in ms if m["type"] == "level"], 40, "reports after the cuts")
    time.sleep(3)
    msgs = full.messages()
    assert_nothing_lost(msgs)
    assert len([m for m in msgs if m["type"] == "hello"]) >= 2, "the reboots should show as hellos"


def test_reminder_and_order_exactly_once_per_episode(full):
    if full.real_port:
        pytest.skip("needs the simulated world")
    full.world("rate 1500")  # run down fast
    full.wait_for(lambda ms: events(ms, "order_request"), 90, "the automatic order")
    time.sleep(4)  # the device keeps sampling: no second order may come
    msgs = full.messages()
    autos = [m for m in events(msgs, "order_request") if m.get("trigger") == 1]
    by_episode = {}
    for m in autos:  # the world refills itself after running empty: a new episode may start
        by_episode.setdefault(m["episode"], []).append(m["key"])
    assert all(len(k) == 1 for k in by_episode.values()), by_episode
    assert all(k == ["%s-e%d" % (full.device_id, e)] for e, k in by_episode.items()), by_episode
    per_episode = {}
    for m in events(msgs, "low_soon"):
        per_episode[m["episode"]] = per_episode.get(m["episode"], 0) + 1
    assert per_episode and all(v == 1 for v in per_episode.values()), per_episode
    assert_nothing_lost(msgs)


@pytest.fixture(scope="module")
def order_only(rig_factory):
    return rig_factory("orderonly", consent=1, device_id="toner-02")


def test_consent_order_only_is_respected(order_only):
    if order_only.real_port:
        pytest.skip("needs the simulated world")
    order_only.wait_for(lambda ms: [m for m in ms if m["type"] == "hello"], 30, "hello")
    order_only.world("button")
    order_only.wait_for(lambda ms: events(ms, "order_request"), 30, "the button order")
    time.sleep(3)
    msgs = order_only.messages()
    allowed = {"hello", "event"}
    assert {m["type"] for m in msgs} <= allowed, {m["type"] for m in msgs}
    assert all(m["kind_name"] in ("order_request", "consent_changed") for m in msgs if m["type"] == "event")
    assert all(m.get("trigger") == 0 for m in events(msgs, "order_request"))
    # a raise of consent needs the customer: refused without the flag (docs/THREAT_MODEL.md T17)
    assert order_only.send("consent", "4") == 2
    # the customer opts in to full telemetry: the supplier asks, the device waits for the
    # customer's press (firmware/policy.py), and that press confirms instead of ordering
    assert order_only.send("consent", "4", "--customer-confirmed") == 0
    t_end = time.time() + 30
    while not _downlink_sent(order_only) and time.time() < t_end:
        time.sleep(0.2)
    assert _downlink_sent(order_only), "the consent command was never delivered"
    time.sleep(1)
    assert not [m for m in order_only.messages() if m["type"] == "level"]   # not before the press
    order_only.world("button")
    order_only.wait_for(lambda ms: [m for m in ms if m["type"] == "level"], 40, "level reports after consent 4")
    assert events(order_only.messages(), "consent_changed")
    assert len(events(order_only.messages(), "order_request")) == 1       # the press only confirmed


def _downlink_sent(rig):
    with sqlite3.connect(str(rig.db)) as db:
        return db.execute("SELECT COUNT(*) FROM downlink WHERE sent_at IS NOT NULL").fetchone()[0] > 0
