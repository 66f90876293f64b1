"""The bridge's durable store (SQLite, WAL).

Everything the reliability contract needs lives here, so a crash loses nothing:
  messages  every verified uplink message, with the exact envelope bytes (to tell a
            retransmission, which is re-acked, from a replay, which is rejected)
  outbox    one row per (uplink, message) with a `forwarded` flag: forwarding reads
            from here, so an uplink outage or a bridge restart resumes where it stopped
  devices   per device: highest stored seq, the downlink counter's lease high-water mark
            (never reused across restarts, see next_down_seq), last seen, last link,
            last level / hello / consent (for monitor)
  keygens   per (device, key fingerprint): the replay window's epoch and highest seq
            (messages and outbox rows carry the epoch); see window()
  downlink  commands queued by `consumables send` or MQTT, delivered by the bridge
  audit     operator decisions that need a trace (a consent raise the customer confirmed)

synchronous=FULL: a COMMIT is on disk when it returns, and the bridge acks only after it.
Group commit (store_messages): the frames that reach the bridge together are stored in
one transaction, so one fsync covers them all, and each is acked after that COMMIT.
One connection per Store, serialised by a lock; other processes (send, monitor) open their
own connection, and busy_timeout lets writers from several processes take turns.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from host_tools.registry import create_private

# messages and outbox rows are keyed by (device, epoch, seq): the epoch is the device's key
# generation (keygens), so a board re-provisioned under the same id (seq from 0 again)
# never collides with what its old key sent.
# The outbox's indexes for forwarding and queue counts hold only the rows not yet forwarded
# (partial indexes, sqlite.org/partialindex.html): a few pages however long the outbox, so a
# group commit's outbox rows touch those few pages, not one page of a fleet-wide index per
# frame (the full indexes outbox_pending and outbox_queued, dropped here, cost ~0.7 WAL page
# per frame stored and again per frame forwarded, with 1,000 devices in groups of 50).
SCHEMA = """
CREATE TABLE IF NOT EXISTS messages(
  device TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, json TEXT NOT NULL,
  body BLOB NOT NULL, received_at REAL NOT NULL, link TEXT, epoch INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(device, epoch, seq));
CREATE TABLE IF NOT EXISTS outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT, uplink TEXT NOT NULL,
  device TEXT NOT NULL, seq INTEGER NOT NULL,
  forwarded INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  forwarded_at REAL, last_error TEXT, epoch INTEGER NOT NULL DEFAULT 0,
  UNIQUE(uplink, device, epoch, seq));
CREATE TABLE IF NOT EXISTS keygens(
  device TEXT NOT NULL, fp TEXT NOT NULL, epoch INTEGER NOT NULL,
  max_seq INTEGER NOT NULL DEFAULT -1, first_seen REAL,
  PRIMARY KEY(device, fp), UNIQUE(device, epoch));
DROP INDEX IF EXISTS outbox_pending;
DROP INDEX IF EXISTS outbox_queued;
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox(uplink, id) WHERE forwarded=0;
CREATE INDEX IF NOT EXISTS outbox_unsent_device ON outbox(device) WHERE forwarded=0;
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
TABLES = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))
SCHEMA_VERSION = 1     # PRAGMA user_version; 0: before key generations (issue 11)
LEGACY_FP = ""         # keygens.fp of the window migrated from version 0: its key is not known
# A frame may not jump further than this past the highest seq stored under its key: one
# frame under a leaked key could otherwise take the window to 2**40-1 and lock the device
# out. A device skips at most the rest of a 16-seq lease per boot (firmware/outbox.py) plus
# what its bounded outbox dropped, so 2**20 is 65,536 boots without one delivered message.
MAX_SEQ_STEP = 1 << 20


DEFERRED_CHECKPOINT_PAGES = 20000   # defer_checkpoints(): the writer's own checkpoint only past ~80 MB of WAL
DOWN_SEQ_LEASE = 64   # downlink seqs handed out per persisted lease (one commit per 64 acks/commands)


class StoreError(Exception):
    pass


class NotReady(StoreError):
    """The database file exists but the bridge has not finished creating its tables."""


def consent_is_lowering(level, floor) -> bool:
    """True when a consent command cannot widen what the device may send: level 0 (the
    lowest), or at most the device's known consent floor (Store.consent_floor)."""
    return isinstance(level, int) and (level == 0 or (floor is not None and level <= floor))


@dataclass
class Record:
    """One stored message on its way to one uplink."""
    outbox_id: int
    device: str
    seq: int
    type: str
    json: dict
    body: bytes
    received_at: float
    epoch: int = 0

    @property
    def idempotency_key(self) -> str:
        """device:seq for a device's first key generation (as before key generations
        existed), device:epoch:seq for later ones, whose seqs may start from 0 again."""
        if self.epoch:
            return "%s:%d:%d" % (self.device, self.epoch, self.seq)
        return "%s:%d" % (self.device, self.seq)


def db_uri(path, mode: str) -> str:
    """A file: URI for path, every character of the path percent-quoted: --db is a path,
    never a URI, so a '?' or '#' in it is part of the file name, not a query (which could
    set mode=memory or vfs= behind the operator's back). RFC 8089 / sqlite.org/uri.html."""
    return "file:%s?mode=%s" % (urllib.parse.quote(str(Path(path).resolve())), mode)


def status_path(db_path) -> Path:
    """The JSON status file the bridge rewrites every second, next to the DB."""
    return Path(str(db_path) + ".status.json")


class Store:
    def __init__(self, path, readonly: bool = False, create: bool = True, down_lease: int = DOWN_SEQ_LEASE):
        self.path = str(path)
        self._lock = threading.RLock()
        self.down_lease = max(1, int(down_lease))
        self._down = {}      # device -> (next downlink seq, leased high-water mark), this process only
        self.commits = 0     # COMMITs issued (each one fsync with synchronous=FULL): for tests/benchmarks
        self._checkpointer = None   # checkpoint()'s connection
        self._have_windows, self._have_devices = set(), set()   # keygens / devices rows this Store committed
        if readonly:
            if not Path(self.path).exists():
                raise StoreError("no bridge database at %s (start the bridge or pass --db)" % self.path)
            # mode=ro: the monitor can never write, even by accident
            self.db = sqlite3.connect(db_uri(self.path, "ro"), uri=True,
                                      isolation_level=None, check_same_thread=False, timeout=5)
            # The bridge creates the file, then its tables one by one (the schema script
            # autocommits per statement): a reader that starts with it can see a part.
            try:
                have = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            except sqlite3.Error as e:
                self.db.close()
                raise StoreError("cannot open database %s: %s" % (self.path, e)) from None
            if not TABLES <= have:
                self.db.close()
                raise NotReady("bridge database %s is not ready yet (the bridge is still creating it)"
                               % self.path)
            return
        if not create and not Path(self.path).exists():
            raise StoreError("no bridge database at %s (start the bridge or pass --db)" % self.path)
        try:
            create_private(self.path)   # 0600 from creation; SQLite gives its WAL and SHM the same mode
            self.db = sqlite3.connect(db_uri(self.path, "rw"), uri=True, isolation_level=None,
                                      check_same_thread=False, timeout=10)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA busy_timeout=10000")
            self._migrate()
            self.db.executescript(SCHEMA)
            self.db.execute("PRAGMA user_version=%d" % SCHEMA_VERSION)
        except (sqlite3.Error, OSError) as e:
            raise StoreError("cannot open database %s: %s" % (self.path, e)) from None

    def _migrate(self):
        """Version 0 -> 1 in one transaction, nothing dropped: messages and outbox get
        the epoch column (0) in their keys (SQLite cannot change a key in place, so each
        table is copied into its new shape), and every device's window becomes a keygens
        row with the unknown fingerprint LEGACY_FP, which the bridge gives to the first
        key its stored frames verify under (BridgeCore._window)."""
        cols = [r[1] for r in self.db.execute("PRAGMA table_info(messages)")]
        if not cols or "epoch" in cols:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for table, new in (("messages", "messages(device, seq, type, json, body, received_at, link, epoch)"),
                               ("outbox", "outbox(id, uplink, device, seq, forwarded, attempts, forwarded_at, "
                                          "last_error, epoch)")):
                self.db.execute("ALTER TABLE %s RENAME TO %s_v0" % (table, table))
                self.db.execute(re.search(r"CREATE TABLE IF NOT EXISTS %s\(.*?\);" % table, SCHEMA, re.S)
                                .group(0)[:-1])
                old = new.split("(", 1)[1].rstrip(")").replace("epoch", "0")
                self.db.execute("INSERT INTO %s SELECT %s FROM %s_v0" % (new, old, table))
                self.db.execute("DROP TABLE %s_v0" % table)
            self.db.execute(re.search(r"CREATE TABLE IF NOT EXISTS keygens\(.*?\);", SCHEMA, re.S).group(0)[:-1])
            self.db.execute("INSERT INTO keygens(device, fp, epoch, max_seq) SELECT device, ?, 0, max_seq "
                            "FROM devices", (LEGACY_FP,))
            self.db.execute("PRAGMA user_version=%d" % SCHEMA_VERSION)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self):
        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
            self.db.close()

    # -- WAL checkpoints off the commit path --
    def defer_checkpoints(self, pages: int = DEFERRED_CHECKPOINT_PAGES) -> None:
        """Leave WAL checkpoints to checkpoint(), called by a housekeeping thread: by
        default SQLite runs one inside the COMMIT that takes the WAL past 1,000 pages, so
        every few dozen groups one of them (and its acks) waited for the copy into the
        database file and its fsync, with the connection's lock held (7% of the bridge's
        busy time at 5,000 msg/s). The writer still checkpoints by itself past `pages`,
        should the housekeeping thread not keep up. Durability is the COMMIT's, unchanged."""
        with self._lock:
            self.db.execute("PRAGMA wal_autocheckpoint=%d" % int(pages))

    def checkpoint(self) -> None:
        """A PASSIVE checkpoint (sqlite.org/wal.html: copies what no reader still needs,
        never blocks the writer) through a connection of its own, so the link threads keep
        committing while it runs (sqlite3 releases the GIL while SQLite works)."""
        if self._checkpointer is None:
            db = sqlite3.connect(db_uri(self.path, "rw"), uri=True, isolation_level=None,
                                 check_same_thread=False, timeout=10)
            db.execute("PRAGMA synchronous=FULL")   # the database file is fsynced after the copy
            self._checkpointer = db
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    # -- transactions: explicit BEGIN IMMEDIATE / COMMIT (autocommit connection) --
    def _tx(self, fn, *args, durable: bool = True):
        """durable=False: this COMMIT is not fsynced (synchronous=NORMAL for it alone).
        Only for bookkeeping that may be lost in a power cut without harm (forwarded
        flags: the records are forwarded again, and the uplinks dedupe on the
        idempotency key). WAL frames are written in order, so the next durable COMMIT's
        fsync makes it durable too, and a lost one never takes a durable one with it."""
        with self._lock:
            if not durable:
                self.db.execute("PRAGMA synchronous=NORMAL")
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    out = fn(*args)
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                self.db.execute("COMMIT")  # synchronous=FULL: durable when this returns
            finally:
                if not durable:
                    self.db.execute("PRAGMA synchronous=FULL")
            self.commits += 1
            return out

    # ---------------------------------------------------------------- uplink path
    def max_seqs(self) -> dict:
        with self._lock:
            return dict(self.db.execute("SELECT device, max_seq FROM devices"))

    def window(self, device: str, fp: str, adopt_legacy=None, now: float | None = None,
               create: bool = True, min_epoch: int = 0) -> tuple[int, int]:
        """(epoch, highest stored seq) of a device's replay window under the key whose
        fingerprint is fp, created on first use with the device's next epoch. Replay
        state is per (device, key): a board re-provisioned with a new key under the same
        id starts a new window, while frames under a removed key fail their MAC anyway.
        A window migrated from before key generations (fp LEGACY_FP) is given to this key
        when adopt_legacy(body of its highest stored frame, or None) says that frame
        verifies under it, so an upgrade does not reopen old seqs to replay.
        create=False: a new window is not written here (no COMMIT of its own): its epoch
        (the device's next, at least min_epoch) is returned, and store_messages writes its
        keygens row in the transaction of its first frame (group commit: one COMMIT)."""
        with self._lock:
            row = self.db.execute("SELECT epoch, max_seq FROM keygens WHERE device=? AND fp=?", (device, fp)).fetchone()
            if row:
                return row[0], row[1]
            legacy = self.db.execute("SELECT epoch, max_seq FROM keygens WHERE device=? AND fp=?",
                                     (device, LEGACY_FP)).fetchone()
            if legacy and adopt_legacy is not None and adopt_legacy(self.stored_body(device, legacy[1], legacy[0])):
                self._tx(lambda: self.db.execute("UPDATE keygens SET fp=? WHERE device=? AND fp=?",
                                                 (fp, device, LEGACY_FP)))
                return legacy

            def work():
                epoch = max(min_epoch, self.db.execute("SELECT COALESCE(MAX(epoch) + 1, 0) FROM keygens "
                                                       "WHERE device=?", (device,)).fetchone()[0])
                if not create:
                    return epoch
                self.db.execute("INSERT INTO keygens(device, fp, epoch, max_seq, first_seen) VALUES (?,?,?,-1,?)",
                                (device, fp, epoch, time.time() if now is None else now))
                return epoch
            return (self._tx(work) if create else work()), -1

    def stored_body(self, device: str, seq: int, epoch: int = 0):
        with self._lock:
            row = self.db.execute("SELECT body FROM messages WHERE device=? AND epoch=? AND seq=?",
                                  (device, epoch, seq)).fetchone()
        return row[0] if row else None

    def store_message(self, msg, body: bytes, link: str, uplinks, now: float | None = None, epoch: int = 0,
                      fp: str | None = None) -> int:
        """Store one new message and its outbox rows, commit, return the ack's downlink seq."""
        return self.store_messages([(msg, body, link, epoch, fp)], uplinks, now)[0]

    def store_messages(self, items, uplinks, now: float | None = None) -> list[int]:
        """Group commit: store new messages [(msg, body, link, epoch, fp)] (epoch: the key
        generation's replay window, see window(), 0 when left out; fp: its key's fingerprint,
        for a window window(create=False) did not write) and their outbox rows in ONE
        transaction, commit once, return each one's ack downlink seq (in order).

        One COMMIT (one fsync with synchronous=FULL) for all of them: frames that arrive
        together share its cost, and every one of them is on disk when this returns, so
        the caller may ack them all. If the COMMIT fails, none is stored (ROLLBACK) and
        none may be acked. The ack's downlink seq comes from the lease (next_down_seq);
        when a lease runs out its extension rides in the same transaction.
        """
        now = time.time() if now is None else now
        fps = {}   # (device, epoch) -> key fingerprint of a window this transaction may create
        rows, norm = [], []
        # one UPDATE per device with its last values (a batch may hold several of its frames),
        # one per (device, key generation) for the replay window's highest seq
        per_dev: dict = {}
        windows: dict = {}
        dumps = json.dumps
        for it in items:
            msg, body, link = it[0], it[1], it[2]
            epoch = it[3] if len(it) > 3 else 0
            dev, seq, mtype = msg.device, msg.seq, msg.type
            fps[dev, epoch] = (it[4] if len(it) > 4 else None) or "epoch-%d" % epoch
            norm.append((msg, body, link, epoch))
            doc = msg.to_json()
            doc["received_at"] = now
            if epoch:
                doc["key_epoch"] = epoch   # a later key generation: its seqs may repeat an earlier one's
            text = dumps(doc)
            rows.append((dev, seq, mtype, text, bytes(body), now, link, epoch))
            w = windows.get((dev, epoch), -1)
            if seq > w:
                windows[dev, epoch] = seq
            d = per_dev.get(dev)
            if d is None:
                d = per_dev[dev] = {}
            d["epoch"] = epoch   # the monitor's max_seq: that of the key generation last heard from
            d["last_seen"], d["link"] = now, link
            if mtype == "level":
                d["level"] = text
            elif mtype == "hello":
                d["hello"], d["consent"] = text, doc.get("consent")
            elif mtype == "event" and doc.get("kind") == 5 and doc.get("value") is not None:
                d["consent"] = doc["value"]  # consent_changed carries the new level as value
        items = norm
        leases: dict = {}

        def work():
            self.db.executemany("INSERT INTO messages(device, seq, type, json, body, received_at, link, epoch) "
                                "VALUES (?,?,?,?,?,?,?,?)", rows)
            self.db.executemany("INSERT OR IGNORE INTO outbox(uplink, device, seq, epoch) VALUES (?,?,?,?)",
                                [(u, msg.device, msg.seq, epoch) for msg, _, _, epoch in items for u in uplinks])
            # a new key generation's window is born with its first frame, in its COMMIT (rows
            # this connection has committed are known to exist: no statement for them)
            self.db.executemany("INSERT OR IGNORE INTO keygens(device, fp, epoch, max_seq, first_seen) "
                                "VALUES (?,?,?,-1,?)", [(dev, fps[dev, epoch], epoch, now) for dev, epoch in windows
                                                        if (dev, epoch) not in self._have_windows])
            self.db.executemany("UPDATE keygens SET max_seq=MAX(max_seq, ?) WHERE device=? AND epoch=?",
                                [(seq, dev, epoch) for (dev, epoch), seq in windows.items()])
            self.db.executemany("INSERT OR IGNORE INTO devices(device) VALUES (?)",
                                [(d,) for d in per_dev if d not in self._have_devices])
            shapes: dict = {}   # the columns a device's UPDATE sets -> its rows (one executemany each)
            for dev, d in per_dev.items():
                cols = tuple(k for k in d if k != "epoch")
                shapes.setdefault(cols, []).append([dev, d["epoch"]] + [d[k] for k in cols] + [dev])
            for cols, vals in shapes.items():
                sets = ["max_seq=(SELECT max_seq FROM keygens WHERE device=? AND epoch=?)"] + ["%s=?" % k for k in cols]
                self.db.executemany("UPDATE devices SET %s WHERE device=?" % ", ".join(sets), vals)
            dseqs = []
            for msg, _, _, _ in items:
                dseq, leases[msg.device] = self._take_down_seq(msg.device, leases.get(msg.device))
                dseqs.append(dseq)
            return dseqs

        with self._lock:
            dseqs = self._tx(work)
            self._down.update(leases)  # only once the leases (if extended) are on disk
            self._have_windows.update(windows)   # rows are never deleted: committed, they exist
            self._have_devices.update(per_dev)
            return dseqs

    def _take_down_seq(self, device: str, st=None):
        """(seq, new in-memory state); extends the persisted lease when it is used up.
        The caller holds the lock and is inside a transaction; it installs the state
        only after COMMIT, so a failed commit never hands out an unpersisted seq.
        `st`: this transaction's state so far for the device (a batch with several acks)."""
        st = st or self._down.get(device)
        if st is None:
            row = self.db.execute("SELECT down_seq FROM devices WHERE device=?", (device,)).fetchone()
            hw = row[0] if row else 0
            st = (hw + 1, hw)        # nothing leased by this process yet
        nxt, hw = st
        if nxt > hw:
            hw = nxt - 1 + self.down_lease
            self.db.execute("INSERT OR IGNORE INTO devices(device) VALUES (?)", (device,))
            self.db.execute("UPDATE devices SET down_seq=MAX(down_seq, ?) WHERE device=?", (hw, device))
        return nxt, (nxt + 1, hw)

    def next_down_seq(self, device: str) -> int:
        """The next downlink sequence number for a device, never reused, even after a crash.

        Leased in blocks like the device's uplink seq (firmware/outbox.py): the DB holds
        the highest seq this bridge may have handed out (the lease high-water mark); when
        the lease is used up it is extended by DOWN_SEQ_LEASE and committed before the
        first seq of the new block is returned. So one re-ack or command in 64 costs a
        commit (fsync), the others none, and a restart (SIGKILL included) resumes above the
        stored mark: it skips ahead, never back. The device accepts any seq above the last
        one it took, so gaps are harmless.
        """
        with self._lock:
            st = self._down.get(device)
            if st is not None and st[0] <= st[1]:
                self._down[device] = (st[0] + 1, st[1])
                return st[0]
            out = []
            dseq = self._tx(lambda: out.append(self._take_down_seq(device)) or out[0][0])
            self._down[device] = out[0][1]
            return dseq

    # ---------------------------------------------------------------- forwarding
    def pending(self, uplink: str, limit: int = 100) -> list[Record]:
        with self._lock:
            rows = self.db.execute(
                "SELECT o.id, m.device, m.seq, m.type, m.json, m.body, m.received_at, m.epoch FROM outbox o "
                "JOIN messages m ON m.device=o.device AND m.epoch=o.epoch AND m.seq=o.seq "
                "WHERE o.uplink=? AND o.forwarded=0 ORDER BY o.id LIMIT ?", (uplink, limit)).fetchall()
        return [Record(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7]) for r in rows]

    def mark_forwarded(self, ids, now: float | None = None) -> None:
        if not ids:
            return
        now = time.time() if now is None else now
        self._tx(lambda: self.db.executemany(
            "UPDATE outbox SET forwarded=1, forwarded_at=?, attempts=attempts+1, last_error=NULL WHERE id=?",
            [(now, i) for i in ids]), durable=False)  # lost in a power cut: forwarded again, deduped

    def mark_failed(self, oid: int, error: str) -> None:
        self._tx(lambda: self.db.execute(
            "UPDATE outbox SET attempts=attempts+1, last_error=? WHERE id=?", (error[:200], oid)))

    def queued(self, uplink: str | None = None) -> int:
        with self._lock:
            if uplink is None:
                return self.db.execute("SELECT COUNT(*) FROM outbox WHERE forwarded=0").fetchone()[0]
            return self.db.execute("SELECT COUNT(*) FROM outbox WHERE forwarded=0 AND uplink=?",
                                   (uplink,)).fetchone()[0]

    # ---------------------------------------------------------------- downlink commands
    def queue_downlink(self, device: str, name: str, fields: dict, now: float | None = None,
                       audit: dict | None = None) -> int:
        """Queue a command; `audit` (e.g. a confirmed consent raise) is recorded in the same commit."""
        now = time.time() if now is None else now

        def work():
            did = self.db.execute("INSERT INTO downlink(device, name, fields, created_at) VALUES (?,?,?,?)",
                                  (device, name, json.dumps(fields, sort_keys=True), now)).lastrowid
            if audit is not None:
                self.db.execute("INSERT INTO audit(at, device, what, detail) VALUES (?,?,?,?)",
                                (now, device, audit.get("what", name),
                                 json.dumps(dict(audit, downlink_id=did), sort_keys=True)))
            return did

        return self._tx(work)

    def audit_log(self, device: str | None = None) -> list[dict]:
        with self._lock:
            rows = self.db.execute("SELECT at, device, what, detail FROM audit WHERE ? IS NULL OR device=? "
                                   "ORDER BY id", (device, device)).fetchall()
        return [dict(json.loads(r[3]), at=r[0], device=r[1], what=r[2]) for r in rows]

    def consent_floor(self, device: str) -> int | None:
        """The lowest consent level the device may be at (None: unknown, never reported).

        Its last reported level (hello, or a consent_changed event), lowered by any consent
        command still queued or sent after that report: a command to 1 queued after a report
        of 4 makes 1 the level a later command is compared with, so "lower, then raise again"
        is still a raise.
        """
        with self._lock:
            row = self.db.execute("SELECT consent FROM devices WHERE device=?", (device,)).fetchone()
            level = row[0] if row and isinstance(row[0], int) else None
            at = self.db.execute(
                "SELECT MAX(received_at) FROM messages WHERE device=? AND (type='hello' OR "
                "(type='event' AND json_extract(json, '$.kind')=5))", (device,)).fetchone()[0]
            rows = self.db.execute(
                "SELECT fields FROM downlink WHERE device=? AND name='consent' AND "
                "(sent_at IS NULL OR (dseq >= 0 AND sent_at >= ?))", (device, at or 0.0)).fetchall()
        for (fields,) in rows:
            lvl = json.loads(fields).get("level")
            if isinstance(lvl, int):
                level = lvl if level is None else min(level, lvl)
        return level

    def downlink_devices(self) -> set:
        """The devices with commands not yet sent (one indexed query for a whole batch)."""
        with self._lock:
            return {r[0] for r in self.db.execute("SELECT DISTINCT device FROM downlink WHERE sent_at IS NULL")}

    def pending_downlinks(self, device: str | None = None) -> list[tuple]:
        """[(id, device, name, fields)] not yet sent, oldest first."""
        with self._lock:
            if device is None:
                rows = self.db.execute("SELECT id, device, name, fields FROM downlink "
                                       "WHERE sent_at IS NULL ORDER BY id").fetchall()
            else:
                rows = self.db.execute("SELECT id, device, name, fields FROM downlink "
                                       "WHERE sent_at IS NULL AND device=? ORDER BY id", (device,)).fetchall()
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    def mark_downlink_sent(self, did: int, dseq: int, link: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._tx(lambda: self.db.execute("UPDATE downlink SET sent_at=?, dseq=?, link=? WHERE id=?",
                                         (now, dseq, link, did)))

    # ---------------------------------------------------------------- monitor / plot
    def _device_rows(self) -> list[tuple]:
        with self._lock:
            return self.db.execute(
                "SELECT d.device, d.max_seq, d.last_seen, d.link, d.level, d.hello, d.consent, "
                "(SELECT COUNT(*) FROM outbox o WHERE o.device=d.device AND o.forwarded=0), "
                "(SELECT COUNT(*) FROM downlink w WHERE w.device=d.device AND w.sent_at IS NULL) "
                "FROM devices d ORDER BY d.device").fetchall()

    def devices(self) -> list[dict]:
        return [{"device": r[0], "max_seq": r[1], "last_seen": r[2], "link": r[3],
                 "level": json.loads(r[4]) if r[4] else None, "hello": json.loads(r[5]) if r[5] else None,
                 "consent": r[6], "queue": r[7], "downlink_pending": r[8]} for r in self._device_rows()]

    def devices_json(self) -> str:
        """json.dumps(devices()) in meaning, built for the status file: each device's last
        level and hello go in as the JSON text they are stored as (this store wrote them
        with json.dumps), not parsed and encoded again, and one small dumps per device
        lets other threads run in between. For 1,000 devices: ~6 ms instead of ~21 ms,
        during which the old way held the GIL ~10 ms at a stretch in one dumps call,
        stalling the link thread's acks (the bridge rewrites this file every second)."""
        out = []
        for r in self._device_rows():
            head = json.dumps({"device": r[0], "max_seq": r[1], "last_seen": r[2], "link": r[3], "consent": r[6],
                               "queue": r[7], "downlink_pending": r[8]})
            out.append('%s, "level": %s, "hello": %s}' % (head[:-1], r[4] or "null", r[5] or "null"))
        return "[" + ", ".join(out) + "]"

    def device_activity(self, silent_before: float) -> tuple[int, int]:
        """(devices seen, of those last seen before `silent_before`) for the metrics."""
        with self._lock:
            n, silent = self.db.execute("SELECT COUNT(*), COALESCE(SUM(last_seen IS NULL OR last_seen < ?), 0) "
                                        "FROM devices", (silent_before,)).fetchone()
        return n, silent

    def history(self, device: str, types=("level", "event")) -> list[dict]:
        q = ",".join("?" * len(types))
        with self._lock:
            rows = self.db.execute("SELECT json FROM messages WHERE device=? AND type IN (%s) "
                                   "ORDER BY received_at, seq" % q, (device, *types)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def sent_downlinks(self, device: str) -> list[dict]:
        """Commands delivered to a device (for plot markers: order status changes)."""
        with self._lock:
            rows = self.db.execute("SELECT name, fields, sent_at FROM downlink WHERE device=? AND sent_at IS NOT NULL "
                                   "AND dseq >= 0 ORDER BY sent_at", (device,)).fetchall()
        return [{"type": r[0], "fields": json.loads(r[1]), "sent_at": r[2]} for r in rows]
