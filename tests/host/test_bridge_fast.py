"""The bridge's fast paths against their reference code: same output for every input."""
import json

from hypothesis import given, settings, strategies as st

from host_tools import bridge

values = st.one_of(st.text(max_size=20), st.integers(-2 ** 70, 2 ** 70), st.booleans(), st.none(),
                   st.floats(), st.lists(st.integers(0, 9), max_size=3), st.binary(max_size=4))
keys = st.one_of(st.sampled_from(["link", "device", "seq", "type", "uplink", "ts", "event"]), st.text(max_size=8))


def reference(ts, event, fields):
    try:
        return json.dumps(dict(ts=ts, event=event, **fields), default=str)
    except TypeError as e:
        return ("TypeError", str(e))


def fast(ts, event, fields):
    try:
        return bridge.json_line(ts, event, fields)
    except TypeError as e:
        return ("TypeError", str(e))


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.floats(), st.integers(0, 2 ** 40)), st.text(max_size=12), st.dictionaries(keys, values, max_size=6))
def test_json_line_same_as_json_dumps(ts, event, fields):
    assert fast(ts, event, fields) == reference(ts, event, fields)


def test_json_line_per_message_rows():
    row = {"link": "udp:127.0.0.1:4210", "device": "printer-\u00e9\"01", "seq": 2 ** 40 - 1, "type": "level"}
    for _ in range(2):   # the second time from the cache of encoded strings
        line = bridge.json_line(1764650000.123, "frame", row)
        assert line == json.dumps(dict(ts=1764650000.123, event="frame", **row))
        assert json.loads(line)["device"] == row["device"]


def test_json_line_cache_is_bounded():
    for i in range(60000):
        bridge.json_line(1.0, "frame", {"device": "d%d" % i})
    assert len(bridge._JSON_STR) <= 50001


def test_outbox_indexes_hold_only_unforwarded_rows(tmp_path):
    """The outbox's partial indexes (store.SCHEMA): a database made with the old full ones
    gets them replaced; counts and pending() are right before and after forwarding, and
    the forwarded rows leave the indexes."""
    import sqlite3

    from host_tools.codec import Level
    from host_tools.store import Store
    path = tmp_path / "b.sqlite"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, uplink TEXT NOT NULL, "
                      "device TEXT NOT NULL, seq INTEGER NOT NULL, forwarded INTEGER NOT NULL DEFAULT 0, "
                      "attempts INTEGER NOT NULL DEFAULT 0, forwarded_at REAL, last_error TEXT, "
                      "epoch INTEGER NOT NULL DEFAULT 0, UNIQUE(uplink, device, epoch, seq));"
                      "CREATE INDEX outbox_pending ON outbox(uplink, forwarded, id);"
                      "CREATE INDEX outbox_queued ON outbox(forwarded, device);")
    old.close()
    store = Store(path)
    try:
        names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"outbox_unsent", "outbox_unsent_device"} <= names
        assert not names & {"outbox_pending", "outbox_queued"}
        msgs = [(Level("dev-%d" % (i % 3), i + 1, "level", remaining=5), b"body%d" % i, "udp:x") for i in range(9)]
        store.store_messages(msgs, ["a", "b"])
        assert store.queued() == 18 and store.queued("a") == 9
        assert [d["queue"] for d in store.devices()] == [6, 6, 6]
        recs = store.pending("a", 5)
        assert [(r.device, r.seq) for r in recs] == [("dev-%d" % (i % 3), i + 1) for i in range(5)]
        store.mark_forwarded([r.outbox_id for r in recs])
        assert store.queued("a") == 4 and store.queued() == 13
        assert [(r.device, r.seq) for r in store.pending("a")] == [("dev-%d" % (i % 3), i + 1) for i in range(5, 9)]
        in_index = store.db.execute("SELECT COUNT(*) FROM outbox INDEXED BY outbox_unsent WHERE forwarded=0 "
                                    "AND uplink='a'").fetchone()[0]
        assert in_index == 4
        plan = " ".join(r[-1] for r in store.db.execute(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM outbox o WHERE o.device=? AND o.forwarded=0", ("dev-0",)))
        assert "outbox_unsent_device" in plan
    finally:
        store.close()
