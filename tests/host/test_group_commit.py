"""Group commit: frames that arrive together share one durable COMMIT, and each ack goes
out only after its frame is on disk (BridgeCore.handle_batch, Store.store_messages), plus
the fault tests: the bridge process SIGKILLed mid-batch, and killed right before a
batch's COMMIT (a power cut of the host), never loses a frame it acked."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from host_tools import loadgen, registry as reg
from host_tools.bridge import BridgeCore
from host_tools.store import Store
from test_bridge_support import Replies, chunk, decode_down, frame, level

ROOT = Path(__file__).resolve().parents[2]
UP = "jsonl:/dev/null"


def keyof(i):
    return bytes([i + 1]) * 32


@pytest.fixture
def fleet(tmp_path):
    """A core and 40 registered devices d00..d39."""
    path = tmp_path / "registry.json"
    reg.save(path, {"devices": {"d%02d" % i: {"key": keyof(i).hex()} for i in range(40)}})
    store = Store(tmp_path / "b.sqlite")
    core = BridgeCore(store, reg.Registry(path), [UP])
    yield core
    store.close()


def f(i, seq, payload=None):
    return chunk(frame(seq, payload, dev="d%02d" % i, key=keyof(i)))


def acked(replies, i):
    return [p[1] for _, _, p in (decode_down(x, keyof(i)) for x in replies)]


def test_frames_arriving_together_share_one_commit(fleet):
    rs = [Replies() for _ in range(40)]
    c0 = fleet.store.commits
    out = fleet.handle_batch([(f(i, 1), rs[i], "udp:x") for i in range(40)])
    assert out == ["stored"] * 40
    assert fleet.store.commits - c0 == 1                  # one COMMIT (fsync) for 40 frames
    assert all(acked(rs[i], i) == [1] for i in range(40))
    assert fleet.store.queued(UP) == 40
    assert {d["device"]: d["max_seq"] for d in fleet.store.devices()} == {"d%02d" % i: 1 for i in range(40)}
    # the lease of downlink seqs was extended inside that same commit; the next acks need none
    c1 = fleet.store.commits
    fleet.handle_batch([(f(i, 2), rs[i], "udp:x") for i in range(40)])
    assert fleet.store.commits - c1 == 1 and all(acked(rs[i], i) == [1, 2] for i in range(40))
    dseqs = [decode_down(x, keyof(0))[1] for x in rs[0]]
    assert dseqs[0] < dseqs[1]


def test_group_max_one_is_one_commit_per_frame(tmp_path, fleet):
    fleet.group_max = 1
    c0 = fleet.store.commits
    fleet.handle_batch([(f(i, 1), Replies(), "udp:x") for i in range(10)])
    assert fleet.store.commits - c0 == 10


def test_one_devices_frames_in_order_share_a_commit(fleet):
    r = Replies()
    c0 = fleet.store.commits
    assert fleet.handle_batch([(f(3, s), r, "serial:x") for s in (1, 2, 3)]) == ["stored"] * 3
    assert fleet.store.commits - c0 == 1 and acked(r, 3) == [1, 2, 3]
    assert [x["seq"] for x in fleet.store.history("d03")] == [1, 2, 3]


def test_retransmission_and_replay_inside_a_batch(fleet):
    """A second copy of a frame waiting in the group is a duplicate (re-acked once the
    first is committed), a different frame with its seq a replay (never stored or acked)."""
    r = Replies()
    first, forged = f(5, 1, level(500)), f(5, 1, level(10))
    out = fleet.handle_batch([(first, r, "udp:x"), (f(6, 1), Replies(), "udp:x"), (first, r, "udp:x"),
                              (forged, r, "udp:x"), (f(5, 2), r, "udp:x")])
    assert out == ["stored", "stored", "duplicates", "replay", "stored"]
    assert acked(r, 5) == [1, 1, 2]
    assert [x["remaining"] for x in fleet.store.history("d05")] == [500, 500]


def test_a_failed_commit_acks_nothing_and_stores_nothing(fleet, monkeypatch):
    real = fleet.store.db

    class FailingCommit:
        def __init__(self):
            self.fail = True

        def execute(self, sql, *a):
            if sql == "COMMIT" and self.fail:
                real.execute("ROLLBACK")
                raise sqlite3.OperationalError("disk I/O error")
            return real.execute(sql, *a)

        def __getattr__(self, name):
            return getattr(real, name)

    db = FailingCommit()
    monkeypatch.setattr(fleet.store, "db", db)
    rs = [Replies() for _ in range(5)]
    out = fleet.handle_batch([(f(i, 1), rs[i], "udp:x") for i in range(5)])
    assert out == ["store_errors"] * 5 and fleet.count["store_errors"] == 5
    assert all(len(r) == 0 for r in rs)                   # not on disk -> never acked
    assert real.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    db.fail = False                                        # the disk is back: the devices resend
    assert fleet.handle_batch([(f(i, 1), rs[i], "udp:x") for i in range(5)]) == ["stored"] * 5
    assert all(acked(rs[i], i) == [1] for i in range(5))


def test_one_bad_frame_does_not_sink_its_batch(fleet, monkeypatch):
    """If the group's transaction fails, each frame is tried alone: the others are stored."""
    real, real_many = fleet.store.store_message, fleet.store.store_messages

    def group_fails(items, *a, **kw):
        if len(items) > 1:
            raise sqlite3.IntegrityError("UNIQUE constraint failed")
        return real_many(items, *a, **kw)

    def only_d02_fails(msg, *a, **kw):
        if msg.device == "d02":
            raise sqlite3.IntegrityError("UNIQUE constraint failed")
        return real(msg, *a, **kw)

    monkeypatch.setattr(fleet.store, "store_messages", group_fails)
    monkeypatch.setattr(fleet.store, "store_message", only_d02_fails)
    rs = [Replies() for _ in range(4)]
    out = fleet.handle_batch([(f(i, 1), rs[i], "udp:x") for i in range(4)])
    assert out == ["stored", "stored", "store_errors", "stored"]
    assert [len(r) for r in rs] == [1, 1, 0, 1]


# ------------------------------------------------------------------ fault tests (processes)
def _stored(db):
    con = sqlite3.connect(str(db))
    try:
        return set(con.execute("SELECT device, seq FROM messages"))
    finally:
        con.close()


def _drive(run, seconds, rate):
    """Offer `rate` msg/s from the fleet for `seconds` in a thread; returns the thread."""
    f = run.fleet
    n = len(f.devices)
    t0 = time.monotonic()
    sched = sorted((t0 + k / rate, k % n) for k in range(int(rate * seconds)))
    th = threading.Thread(target=f.run, args=(sched, t0 + seconds, t0 + seconds + 2.0), daemon=True)
    th.start()
    return th


def test_sigkill_mid_batch_loses_no_acked_frame(tmp_path):
    """SIGKILL while batches are being committed, three times; after each kill every frame
    any device holds an ack for is in the database, and after a restart every message
    the devices created is stored exactly once."""
    run = loadgen.Run(300, workdir=tmp_path, ack_timeout=0.3)
    try:
        for kill in range(3):
            run.bridge.start()
            th = _drive(run, 1.2, 1500)
            time.sleep(0.5 + 0.2 * kill)
            run.bridge.proc.send_signal(signal.SIGKILL)
            run.bridge.proc.wait(5)
            run.bridge.proc = None
            run.bridge._log.close()
            th.join(10)
            have = _stored(run.bridge.db)
            acked = {(m.dev, m.seq) for m in run.fleet.msgs if m.acked is not None}
            assert acked and acked <= have, "acked but not stored: %s" % sorted(acked - have)[:5]
        run.bridge.start()
        run.fleet.run([], until=time.monotonic(), drain_until=time.monotonic() + 20)
        assert all(m.acked is not None for m in run.fleet.msgs)
        con = sqlite3.connect(str(run.bridge.db))
        rows = con.execute("SELECT device, seq FROM messages").fetchall()
        con.close()
        assert len(rows) == len(set(rows)) == len(run.fleet.msgs)
    finally:
        run.bridge.stop()
        run.fleet.close()


KILL_BEFORE_COMMIT = r"""
import os, signal, sys
from host_tools import store
real = store.Store.store_messages
def store_messages(self, items, *a, **kw):
    if len(items) >= 2:   # the first group of several frames: cut the power before COMMIT
        real_execute = self.db.execute
        class Db:
            def __getattr__(s, n): return getattr(self.db_real, n)
            def execute(s, sql, *args):
                if sql == "COMMIT":
                    os.kill(os.getpid(), signal.SIGKILL)
                return real_execute(sql, *args)
        self.db_real, self.db = self.db, Db()
    return real(self, items, *a, **kw)
store.Store.store_messages = store_messages
from host_tools.bridge import main_bridge
sys.exit(main_bridge(sys.argv[1:]))
"""


def test_killed_before_commit_acks_nothing_of_its_batch(tmp_path):
    """A power cut between a group's writes and its COMMIT: none of the group is on disk,
    and none of it was acked; the devices resend and everything lands exactly once."""
    run = loadgen.Run(200, workdir=tmp_path, ack_timeout=0.3)
    b = run.bridge
    try:
        cmd = [sys.executable, "-c", KILL_BEFORE_COMMIT, "--listen", "udp://%s:%d" % b.addr,
               "--uplink", "jsonl:%s" % b.uplink, "--registry", str(b.registry), "--db", str(b.db),
               "--print-every", "0"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.monotonic() + 15
        while not Path(str(b.db) + ".status.json").exists() and time.monotonic() < end:
            time.sleep(0.05)
        # every device at once: the datagrams queue while the first is committed -> a group
        th = _drive(run, 0.5, 2000)
        assert proc.wait(20) == -signal.SIGKILL
        th.join(10)
        acked = {(m.dev, m.seq) for m in run.fleet.msgs if m.acked is not None}
        have = _stored(b.db)
        assert acked <= have
        created = {(m.dev, m.seq) for m in run.fleet.msgs}
        assert created - have, "the killed group should be missing from the database"
        b.start()
        run.fleet.run([], until=time.monotonic(), drain_until=time.monotonic() + 20)
        assert all(m.acked is not None for m in run.fleet.msgs)
        con = sqlite3.connect(str(b.db))
        rows = con.execute("SELECT device, seq FROM messages").fetchall()
        con.close()
        assert len(rows) == len(set(rows)) == len(created)
    finally:
        b.stop()
        run.fleet.close()


def _rows_in_db_file_alone(db, tmp_path):
    """The messages the database file holds without its WAL: what checkpoints copied."""
    import shutil
    import tempfile
    copy = Path(tempfile.mkdtemp(dir=tmp_path)) / "main-file-only.sqlite"
    shutil.copyfile(db, copy)
    con = sqlite3.connect(str(copy))
    try:
        return con.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    except sqlite3.OperationalError:   # no such table: not even the schema was copied yet
        return 0
    finally:
        con.close()


def test_commits_leave_checkpoints_to_housekeeping(tmp_path, fleet):
    """With checkpoints deferred (as the bridge runs), 300 commits (~1,800 WAL pages, past
    SQLite's own 1,000-page trigger) copy nothing into the database file: no COMMIT, and no
    ack after it, waits for a checkpoint. Store.checkpoint() then copies all of it, from its
    own connection, and every frame stays readable throughout."""
    fleet.store.defer_checkpoints()
    for n in range(300):
        assert fleet.handle_chunk(f(n % 40, 1 + n // 40), Replies(), "udp:x") == "stored"
    assert fleet.store.queued(UP) == 300
    assert _rows_in_db_file_alone(fleet.store.path, tmp_path) == 0
    fleet.store.checkpoint()
    assert _rows_in_db_file_alone(fleet.store.path, tmp_path) == 300
    # the same commits without deferring: SQLite checkpoints inside some of them
    path = tmp_path / "registry.json"
    plain = BridgeCore(Store(tmp_path / "plain.sqlite"), reg.Registry(path), [UP])
    for n in range(300):
        plain.handle_chunk(f(n % 40, 1 + n // 40), Replies(), "udp:x")
    assert _rows_in_db_file_alone(plain.store.path, tmp_path) > 0
    plain.store.close()


def test_bridge_housekeeping_checkpoints(tmp_path):
    from host_tools.bridge import Bridge
    from test_bridge_support import wait_for
    path = tmp_path / "registry.json"
    reg.save(path, {"devices": {"d%02d" % i: {"key": keyof(i).hex()} for i in range(40)}})
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(path), [], [], log=lambda *a, **k: None).start()
    try:
        assert b.store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] > 1000
        b.core.handle_batch([(f(i, 1), Replies(), "udp:x") for i in range(40)])
        assert wait_for(lambda: _rows_in_db_file_alone(b.store.path, tmp_path) == 40)
    finally:
        b.stop()


class CountingStream:
    def __init__(self):
        self.writes = []

    def write(self, text):
        self.writes.append(text)

    def flush(self):
        pass


def test_a_groups_frame_lines_are_one_write(fleet):
    """With the bridge's JSON log, the `frame` lines of a group are written (and flushed)
    at once, one line per frame with its fields; --quiet leaves them out entirely."""
    from host_tools.bridge import JsonLog
    stream = CountingStream()
    fleet.log = JsonLog(stream)
    fleet.handle_batch([(f(i, 1), Replies(), "udp:x") for i in range(40)])
    frames = [w for w in stream.writes if '"frame"' in w]
    assert len(frames) == 1
    lines = [json.loads(x) for x in frames[0].splitlines()]
    assert [(e["event"], e["device"], e["seq"], e["type"]) for e in lines] == \
        [("frame", "d%02d" % i, 1, "level") for i in range(40)]
    quiet = CountingStream()
    fleet.log = JsonLog(quiet, quiet=("frame",))
    fleet.handle_batch([(f(i, 2), Replies(), "udp:x") for i in range(40)])
    assert not [w for w in quiet.writes if '"frame"' in w]
