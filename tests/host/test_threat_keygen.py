"""Finding 5 of issue 11 (docs/THREAT_MODEL.md T20): replay state tied to the id, not the key.

Before: a board re-provisioned with a new key under the same id (fresh flash, seq from 0)
had every frame rejected as a replay, for ever (the bridge cached the counter; deleting
rows did nothing until a restart), and one frame at seq 2**40-1 under a leaked key locked
the device out for good. Now the replay window is per (device, key generation): the
registry names each key by its fingerprint, a new key starts a new window (epoch), a frame
under a removed key fails its MAC, and a frame may not jump more than MAX_SEQ_STEP past
the highest seq stored under its key. Existing bridge databases are migrated, nothing lost.
"""
import json
import sqlite3

import pytest

from host_tools import registry as reg
from host_tools.bridge import Bridge, BridgeCore
from host_tools.store import Store
from host_tools.uplinks import JsonlUplink, SqliteUplink
from protocol import cose, messages as M, wire
from test_bridge_support import DEV, HELLO, KEY, KEY2, Replies, decode_down, frame, level, make_registry, wait_for

try:
    from host_tools.store import MAX_SEQ_STEP
except ImportError:      # before the fix: no ceiling at all
    MAX_SEQ_STEP = 1 << 20

# the bridge database as it was before key generations (schema version 0), verbatim
SCHEMA_V0 = """
CREATE TABLE IF NOT EXISTS messages(
  device TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, json TEXT NOT NULL,
  body BLOB NOT NULL, received_at REAL NOT NULL, link TEXT,
  PRIMARY KEY(device, seq));
CREATE TABLE IF NOT EXISTS outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT, uplink TEXT NOT NULL,
  device TEXT NOT NULL, seq INTEGER NOT NULL,
  forwarded INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  forwarded_at REAL, last_error TEXT,
  UNIQUE(uplink, device, seq));
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(uplink, forwarded, id);
CREATE INDEX IF NOT EXISTS outbox_queued ON outbox(forwarded, device);
CREATE TABLE IF NOT EXISTS devices(
  device TEXT PRIMARY KEY, max_seq INTEGER NOT NULL DEFAULT -1,
  down_seq INTEGER NOT NULL DEFAULT 0, last_seen REAL, link TEXT,
  level TEXT, hello TEXT, consent INTEGER);
CREATE TABLE IF NOT EXISTS downlink(
  id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, name TEXT NOT NULL,
  fields TEXT NOT NULL, created_at REAL NOT NULL, sent_at REAL, dseq INTEGER, link TEXT);
CREATE INDEX IF NOT EXISTS downlink_pending ON downlink(sent_at, device, id);
CREATE TABLE IF NOT EXISTS audit(
  id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, device TEXT NOT NULL,
  what TEXT NOT NULL, detail TEXT NOT NULL);
"""
UP = "jsonl:/dev/null"
ROUTE = "udp:10.0.0.7:4210"


def chunk(seq, payload=None, key=KEY):
    return wire.unframe(frame(seq, payload if payload is not None else level(max(1, 900 - seq)), key=key))


@pytest.fixture
def core(tmp_path):
    regpath = make_registry(tmp_path)
    store = Store(tmp_path / "b.sqlite")
    c = BridgeCore(store, reg.Registry(regpath), [UP])
    c.regpath = regpath
    yield c
    store.close()


def test_reprovisioned_board_gets_a_new_window_without_a_bridge_restart(core):
    r = Replies()
    assert [core.handle_chunk(chunk(s, HELLO if s == 0 else None), r, ROUTE) for s in range(4)] == ["stored"] * 4
    # the same id deployed again on a fresh flash: a new key, seq from 0
    reg.add_device(core.regpath, DEV, KEY2.hex(), board="virtual")
    r2 = Replies()
    assert core.handle_chunk(chunk(0, HELLO, KEY2), r2, ROUTE) == "stored"
    assert core.handle_chunk(chunk(1, None, KEY2), r2, ROUTE) == "stored"
    assert [p for _, _, p in r2.decoded(KEY2)] == [{0: M.ACK, 1: 0}, {0: M.ACK, 1: 1}]   # signed with the new key
    assert core.handle_chunk(chunk(1, level(5), KEY2), Replies(), ROUTE) == "replay"      # the new window holds
    assert core.handle_chunk(chunk(1, None, KEY2), Replies(), ROUTE) == "duplicates"
    assert core.handle_chunk(chunk(4), Replies(), ROUTE) == "bad_mac"                    # the old key is gone
    # nothing lost: both generations stored and on their way to the uplink, distinct keys
    keys = [rec.idempotency_key for rec in core.store.pending(UP)]
    assert keys == ["dev1:0", "dev1:1", "dev1:2", "dev1:3", "dev1:1:0", "dev1:1:1"]
    assert [rec.json.get("key_epoch") for rec in core.store.pending(UP)][-1] == 1


def test_old_key_frames_stay_refused_after_reprovisioning(core):
    r = Replies()
    assert core.handle_chunk(chunk(0, HELLO), r, ROUTE) == "stored"
    reg.add_device(core.regpath, DEV, KEY2.hex(), board="virtual")
    assert core.handle_chunk(chunk(0, HELLO, KEY2), r, ROUTE) == "stored"
    for seq in (0, 1, 100):          # recorded or forged with the old key, any seq
        assert core.handle_chunk(chunk(seq), Replies(), ROUTE) == "bad_mac"


def test_one_frame_at_the_top_seq_under_a_leaked_key_cannot_lock_the_device_out(core):
    r = Replies()
    for s in range(3):
        assert core.handle_chunk(chunk(s, HELLO if s == 0 else None), r, ROUTE) == "stored"
    leaked = Replies()
    assert core.handle_chunk(chunk(cose.MAX_SEQ, level(1)), leaked, "udp:6.6.6.6:1") == "seq_jump"
    assert core.handle_chunk(chunk(2 + MAX_SEQ_STEP + 1, level(1)), leaked, "udp:6.6.6.6:1") == "seq_jump"
    assert leaked == []
    assert core.handle_chunk(chunk(3), r, ROUTE) == "stored"                 # the device goes on
    assert core.handle_chunk(chunk(3 + MAX_SEQ_STEP), r, ROUTE) == "stored"  # a big but bounded gap is fine


def test_a_poisoned_window_is_undone_by_a_new_key(core):
    """Whatever a leaked key did to its window (here: walked it to the top), a new key
    starts a fresh one: the device speaks again from its own seq."""
    r = Replies()
    assert core.handle_chunk(chunk(0, HELLO), r, ROUTE) == "stored"
    seq = 0
    while seq + MAX_SEQ_STEP <= cose.MAX_SEQ and seq < 5 * MAX_SEQ_STEP:
        seq += MAX_SEQ_STEP
        assert core.handle_chunk(chunk(seq, level(1)), Replies(), "udp:6.6.6.6:1") == "stored"
    assert core.handle_chunk(chunk(7), r, ROUTE) == "replay"                 # locked under the leaked key
    reg.add_device(core.regpath, DEV, KEY2.hex(), board="virtual")
    assert core.handle_chunk(chunk(7, None, KEY2), r, ROUTE) == "stored"


def _v0_database(path, bodies):
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_V0)
    for seq, body in bodies.items():
        t = "hello" if seq == 0 else "level"
        db.execute("INSERT INTO messages VALUES (?,?,?,?,?,?,?)",
                   (DEV, seq, t, json.dumps({"device": DEV, "seq": seq, "type": t, "received_at": 1.0 + seq}),
                    body, 1.0 + seq, ROUTE))
        db.execute("INSERT INTO outbox(uplink, device, seq, forwarded) VALUES (?,?,?,?)",
                   ("jsonl:%s" % path.with_suffix(".jsonl"), DEV, seq, 1 if seq < 2 else 0))
    db.execute("INSERT INTO devices(device, max_seq, down_seq, last_seen, link, consent) VALUES (?,?,?,?,?,?)",
               (DEV, max(bodies), 64, 3.0, ROUTE, 4))
    db.execute("INSERT INTO downlink(device, name, fields, created_at) VALUES (?,?,?,?)",
               (DEV, "config", json.dumps({"report_s": 60}), 2.0))
    db.execute("INSERT INTO audit(at, device, what, detail) VALUES (?,?,?,?)", (2.0, DEV, "consent_raise", "{}"))
    db.commit()
    db.close()


def _rows(path):
    db = sqlite3.connect(path)
    try:
        return {t: db.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0]
                for t in ("messages", "outbox", "devices", "downlink", "audit")}
    finally:
        db.close()


def test_a_version0_database_is_migrated_with_nothing_lost(tmp_path):
    path = tmp_path / "b.sqlite"
    bodies = {s: wire.unframe(frame(s, HELLO if s == 0 else level(900 - s))) for s in range(3)}
    from protocol import framing
    bodies = {s: framing.decode_frame(c) for s, c in bodies.items()}
    _v0_database(path, bodies)
    before = _rows(path)
    out = tmp_path / "b.jsonl"
    b = Bridge(path, reg.Registry(make_registry(tmp_path)), [JsonlUplink(str(out))], [], log=lambda *a, **k: None)
    try:
        assert _rows(path) == before
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert db.execute("SELECT seq, epoch FROM messages ORDER BY seq").fetchall() == [(0, 0), (1, 0), (2, 0)]
        db.close()
        b.start()
        # the pending outbox row (seq 2) is forwarded under its old idempotency key
        assert wait_for(lambda: out.exists() and "dev1:2" in out.read_text())
        r = Replies()
        assert b.core.handle_chunk(chunk(2, level(898)), r, ROUTE) == "duplicates"   # re-acked, not stored
        assert b.core.handle_chunk(chunk(1, level(5)), r, ROUTE) == "replay"          # old seqs stay closed
        assert b.core.handle_chunk(chunk(3), r, ROUTE) == "stored"
        acks = r.decoded()
        assert [p for _, _, p in acks][0] == {0: M.ACK, 1: 2} and min(d for _, d, _ in acks) > 64
        assert wait_for(lambda: "dev1:3" in out.read_text())
        # the queued command survived too, and is delivered now that the device was heard
        assert {0: M.CONFIG, 2: 60} in [p for _, _, p in r.decoded()]
        assert [json.loads(x)["idempotency_key"] for x in out.read_text().splitlines()] == ["dev1:2", "dev1:3"]
    finally:
        b.stop()
    assert Store(path).audit_log(DEV)[0]["what"] == "consent_raise"


def test_a_version0_database_of_a_board_wedged_by_reprovisioning_frees_it(tmp_path):
    """The database was made while the board had KEY; it was re-provisioned with KEY2 before
    the upgrade (and has been refused ever since): its new frames are now stored."""
    from protocol import framing
    path = tmp_path / "b.sqlite"
    _v0_database(path, {s: framing.decode_frame(chunk(s, HELLO if s == 0 else None)) for s in range(3)})
    core = BridgeCore(Store(path), reg.Registry(make_registry(tmp_path, {DEV: KEY2})), [UP])
    assert core.handle_chunk(chunk(0, HELLO, KEY2), Replies(), ROUTE) == "stored"
    assert core.store.stored_body(DEV, 0, 0) is not None            # the old generation's rows are kept


def test_sqlite_uplink_file_from_before_is_migrated_and_takes_a_new_generation(tmp_path):
    from host_tools.store import Record
    out = tmp_path / "up.sqlite"
    db = sqlite3.connect(out)
    db.execute("CREATE TABLE messages(device TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, "
               "json TEXT NOT NULL, received_at REAL NOT NULL, UNIQUE(device, seq))")
    db.execute("INSERT INTO messages VALUES ('dev1', 0, 'hello', '{}', 1.0)")
    db.commit()
    db.close()
    u = SqliteUplink(str(out))
    u.open()
    u.send(Record(1, DEV, 0, "hello", {"device": DEV, "seq": 0}, b"", 2.0, 1))   # epoch 1, seq 0 again
    u.flush()
    u.close()
    db = sqlite3.connect(out)
    assert db.execute("SELECT device, seq, epoch FROM messages ORDER BY epoch").fetchall() == [
        (DEV, 0, 0), (DEV, 0, 1)]
