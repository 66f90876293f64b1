"""Uplinks: where stored messages go (the supplier), behind one small interface.

    open()          connect / open the file; raise UplinkError to be retried later
    send(record)    deliver one store.Record (in order); raise UplinkError on failure
    flush()         make everything sent so far durable/acknowledged (fsync, PUBACK)
    close()

Only after flush() returns does the Forwarder mark the records forwarded in the store,
so a crash or an outage re-delivers, never loses. Re-delivery is made harmless by the
idempotency key `device:seq`: jsonl skips keys already in the file's tail, sqlite has
UNIQUE(device, seq), webhooks get an Idempotency-Key header, MQTT payloads carry it.

URLs: jsonl:PATH | sqlite:PATH | http(s)://...[?format=cbor] | mqtt://HOST:PORT/PREFIX
"""
from __future__ import annotations

import collections
import http.client
import json
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import cbor2

from host_tools.registry import create_private, valid_device_id
from protocol import messages, schema
from protocol.errors import ProtocolError


class UplinkError(Exception):
    pass


def record_doc(rec, key: str | None = None) -> dict:
    """The JSON object an uplink carries: Message.to_json() fields + idempotency key."""
    doc = dict(rec.json)
    doc["idempotency_key"] = rec.idempotency_key if key is None else key
    return doc


# json.dumps(obj, sort_keys=True), without the encoder json.dumps builds anew for every call
# made with a non-default option (~1 us of the forwarder's time per record)
dumps_sorted = json.JSONEncoder(sort_keys=True).encode


def log_many(log, event, rows):
    """Log one line per row (dict of fields): through log.many (bridge.JsonLog: one write
    for them all) when the log has it, else one call each."""
    many = getattr(log, "many", None)
    if many is not None:
        many(event, rows)
    else:
        for r in rows:
            log(event, **r)


def safe_url(url: str) -> str:
    """URL without user:password (for logs, status and the outbox's uplink name)."""
    p = urllib.parse.urlsplit(url)
    if p.password or p.username:
        host = p.hostname or ""
        if p.port:
            host += ":%d" % p.port
        return urllib.parse.urlunsplit((p.scheme, host, p.path, p.query, p.fragment))
    return url


class Uplink:
    name = ""
    on_command = None  # set by the bridge: callback(device, name, fields) -> (id, error) (MQTT only)

    def open(self):
        pass

    def send(self, rec):
        raise NotImplementedError

    def flush(self):
        pass

    def close(self):
        pass


# ------------------------------------------------------------------ jsonl
class JsonlUplink(Uplink):
    TAIL = 4 << 20  # bytes of the file's end scanned for keys already written
    REMEMBER = 100_000

    def __init__(self, path: str):
        self.path = path
        self.name = "jsonl:" + path
        self.f = None
        self.seen: set = set()
        self.order: collections.deque = collections.deque()

    def _remember(self, key):
        self.seen.add(key)
        self.order.append(key)
        if len(self.order) > self.REMEMBER:
            self.seen.discard(self.order.popleft())

    def open(self):
        if self.f:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)   # 0600 from creation
            f = os.fdopen(fd, "ab+")
        except OSError as e:
            raise UplinkError("cannot open %s: %s" % (self.path, e.strerror)) from None
        # A crash between writing lines and marking them forwarded re-sends them on restart:
        # remember the keys at the end of the file and skip those.
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - self.TAIL))
        tail = f.read()
        if size > self.TAIL:
            tail = tail.split(b"\n", 1)[-1]
        for line in tail.splitlines():
            try:
                doc = json.loads(line)
                self._remember(doc.get("idempotency_key") or "%s:%s" % (doc["device"], doc["seq"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line from a crash: ignore
        if size and not tail.endswith(b"\n"):
            f.write(b"\n")  # never glue a new object onto a torn line
        self.f = f

    def send(self, rec):
        key = rec.idempotency_key
        if key in self.seen:
            return
        try:
            self.f.write(dumps_sorted(record_doc(rec, key)).encode() + b"\n")
        except (OSError, ValueError) as e:
            raise UplinkError("write %s: %s" % (self.path, e)) from None
        self._remember(key)

    def flush(self):
        try:
            self.f.flush()
            os.fsync(self.f.fileno())
        except (OSError, ValueError) as e:
            raise UplinkError("flush %s: %s" % (self.path, e)) from None

    def close(self):
        if self.f:
            try:
                self.f.close()
            except OSError:
                pass
            self.f = None


# ------------------------------------------------------------------ sqlite
class SqliteUplink(Uplink):
    TABLE = ("CREATE TABLE IF NOT EXISTS messages(device TEXT NOT NULL, seq INTEGER NOT NULL, "
             "type TEXT NOT NULL, json TEXT NOT NULL, received_at REAL NOT NULL, "
             "epoch INTEGER NOT NULL DEFAULT 0, UNIQUE(device, epoch, seq))")

    def __init__(self, path: str):
        self.path = path
        self.name = "sqlite:" + path
        self.db = None

    def open(self):
        if self.db:
            return
        try:
            create_private(self.path)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
            cols = [r[1] for r in db.execute("PRAGMA table_info(messages)")]
            if cols and "epoch" not in cols:
                # a file from before key generations: UNIQUE(device, seq) would drop a
                # re-provisioned device's seq 0.. as duplicates; copy into the new shape
                db.execute("ALTER TABLE messages RENAME TO messages_v0")
                db.execute(self.TABLE)
                db.execute("INSERT INTO messages(device, seq, type, json, received_at, epoch) "
                           "SELECT device, seq, type, json, received_at, 0 FROM messages_v0")
                db.execute("DROP TABLE messages_v0")
            db.execute(self.TABLE)
            db.commit()
        except sqlite3.Error as e:
            raise UplinkError("cannot open %s: %s" % (self.path, e)) from None
        self.db = db

    def send(self, rec):
        try:
            self.db.execute("INSERT OR IGNORE INTO messages(device, seq, type, json, received_at, epoch) "
                            "VALUES (?,?,?,?,?,?)",
                            (rec.device, rec.seq, rec.type, dumps_sorted(record_doc(rec)),
                             rec.received_at, getattr(rec, "epoch", 0)))
        except sqlite3.Error as e:
            raise UplinkError("sqlite %s: %s" % (self.path, e)) from None

    def flush(self):
        try:
            self.db.commit()
        except sqlite3.Error as e:
            raise UplinkError("sqlite %s: %s" % (self.path, e)) from None

    def close(self):
        if self.db:
            try:
                self.db.rollback()
                self.db.close()
            except sqlite3.Error:
                pass
            self.db = None


# ------------------------------------------------------------------ http webhook
class HttpUplink(Uplink):
    def __init__(self, url: str, timeout: float = 10.0):
        p = urllib.parse.urlsplit(url)
        q = urllib.parse.parse_qsl(p.query, keep_blank_values=True)
        fmt = [v for k, v in q if k == "format"]
        self.format = fmt[-1] if fmt else "json"
        if self.format not in ("json", "cbor"):
            raise ValueError("format must be json or cbor, not %r" % self.format)
        rest = urllib.parse.urlencode([(k, v) for k, v in q if k != "format"])
        self.url = urllib.parse.urlunsplit((p.scheme, p.netloc, p.path or "/", rest, ""))
        self.name = safe_url(url)
        self.timeout = timeout

    def send(self, rec):
        doc = record_doc(rec)
        if self.format == "cbor":
            data, ctype = cbor2.dumps(doc), "application/cbor"
        else:
            data, ctype = json.dumps(doc, sort_keys=True).encode(), "application/json"
        req = urllib.request.Request(self.url, data=data, method="POST", headers={
            "Content-Type": ctype, "Idempotency-Key": rec.idempotency_key,
            "User-Agent": "smart-consumables-bridge"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        except (urllib.error.URLError, OSError) as e:
            raise UplinkError("POST %s: %s" % (self.name, getattr(e, "reason", e))) from None
        except http.client.HTTPException as e:   # a malformed answer (found by fuzzing)
            raise UplinkError("POST %s: bad HTTP answer: %s" % (self.name, type(e).__name__)) from None
        if not 200 <= status < 300:
            raise UplinkError("POST %s: HTTP %d" % (self.name, status))


# ------------------------------------------------------------------ mqtt
class MqttUplink(Uplink):
    """QoS 1 publishes to PREFIX/DEVICE/TYPE; a record counts once its PUBACK arrived.

    Subscribes PREFIX/+/cmd: JSON {"type": "config", "report_s": 60} becomes a queued
    downlink command (validated with protocol.schema.from_named by the bridge).
    """

    MAX_COMMAND = 4096    # bytes of JSON per command: far more than any real command needs

    def __init__(self, url: str, timeout: float = 10.0):
        import paho.mqtt.client as mqtt  # imported here so other uplinks work without paho
        self._mqtt = mqtt
        p = urllib.parse.urlsplit(url)
        if not p.hostname:
            raise ValueError("mqtt URL needs a host: mqtt://HOST:PORT/PREFIX")
        self.host, self.port = p.hostname, p.port or 1883
        self.prefix = p.path.strip("/") or "consumables"
        self.user, self.password = p.username, p.password
        self.name = safe_url(url)
        self.timeout = timeout
        self.client = None
        self.connected = threading.Event()
        self.pending = []

    def open(self):
        if self.client is not None:
            if self.connected.wait(self.timeout):
                return
            self.close()
            raise UplinkError("mqtt %s: not connected" % self.name)
        mqtt = self._mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="consumables-bridge-%d" % os.getpid())
        if self.user:
            c.username_pw_set(self.user, self.password)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a, **k: self.connected.clear()
        c.on_message = self._on_message
        try:
            c.connect(self.host, self.port, keepalive=30)
        except OSError as e:
            raise UplinkError("mqtt %s: %s" % (self.name, e)) from None
        c.loop_start()
        self.client = c
        if not self.connected.wait(self.timeout):
            self.close()
            raise UplinkError("mqtt %s: no CONNACK" % self.name)

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if not reason_code.is_failure:
            # (re)subscribe on every connect: a broker restart forgets the subscription
            client.subscribe("%s/+/cmd" % self.prefix, qos=1)
            self.connected.set()

    def _on_message(self, client, userdata, msg):
        """PREFIX/DEVICE/cmd -> the bridge's command(); the outcome is answered on
        PREFIX/DEVICE/cmd/result as {"ok": true, "id": N} or {"ok": false, "error": ...}.
        Runs on paho's network thread, which an exception would kill (and with it every
        later command and publish): nothing may escape."""
        try:
            self._command(msg)
        except Exception as e:
            try:
                self._answer(None, {"ok": False, "error": "internal error: %s" % type(e).__name__})
            except Exception:
                pass

    def _command(self, msg):
        parts = msg.topic.split("/")
        device = parts[-2] if len(parts) >= 2 else ""   # checked by the bridge (valid_device_id)
        cb = self.on_command
        try:
            if len(msg.payload) > self.MAX_COMMAND:
                raise ValueError("command longer than %d bytes" % self.MAX_COMMAND)
            doc = json.loads(msg.payload)
            if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
                raise ValueError("command must be a JSON object with a type")
            fields = {k: v for k, v in doc.items() if k != "type"}
            schema.from_named(doc["type"], fields)  # validate before queueing
        except (ValueError, ProtocolError, TypeError, RecursionError) as e:  # deep JSON: RecursionError
            err = str(e)[:200]
            if cb:
                cb(device, None, {"error": err})
            return self._answer(device, {"ok": False, "error": err})
        if cb is None:
            return None
        out = cb(device, doc["type"], fields)   # BridgeCore.command: (id, None) | (None, reason)
        did, err = out if isinstance(out, tuple) else (out, None if out is not None else "refused")
        return self._answer(device, {"ok": True, "id": did} if did is not None else {"ok": False, "error": err})

    def _answer(self, device, doc):
        c = self.client
        if c is not None and valid_device_id(device):   # never a topic from an unchecked id
            c.publish("%s/%s/cmd/result" % (self.prefix, device), json.dumps(doc), qos=0)

    def send(self, rec):
        if not self.connected.is_set():
            raise UplinkError("mqtt %s: not connected" % self.name)
        topic = "%s/%s/%s" % (self.prefix, rec.device, rec.type)
        info = self.client.publish(topic, dumps_sorted(record_doc(rec)), qos=1)
        if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
            raise UplinkError("mqtt %s: publish rc=%d" % (self.name, info.rc))
        self.pending.append(info)

    def flush(self):
        infos, self.pending = self.pending, []
        deadline = time.monotonic() + self.timeout
        for info in infos:
            try:
                info.wait_for_publish(max(0.01, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as e:
                raise UplinkError("mqtt %s: %s" % (self.name, e)) from None
            if not info.is_published():
                raise UplinkError("mqtt %s: no PUBACK" % self.name)

    def close(self):
        c, self.client = self.client, None
        self.pending = []
        self.connected.clear()
        if c is not None:
            c.disconnect()
            c.loop_stop()


def make_uplink(url: str) -> Uplink:
    """An Uplink for a URL; ValueError with a clear message if the URL is not one."""
    if url.startswith("jsonl:"):
        path = url[len("jsonl:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError("jsonl uplink needs a path: jsonl:PATH")
        return JsonlUplink(path)
    if url.startswith("sqlite:"):
        path = url[len("sqlite:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError("sqlite uplink needs a path: sqlite:PATH")
        return SqliteUplink(path)
    p = urllib.parse.urlsplit(url)
    if p.scheme in ("http", "https"):
        if not p.hostname:
            raise ValueError("webhook URL needs a host: %s" % safe_url(url))
        return HttpUplink(url)
    if p.scheme == "mqtt":
        try:
            p.port
        except ValueError:
            raise ValueError("bad port in %s" % safe_url(url)) from None
        return MqttUplink(url)
    raise ValueError("unknown uplink %r (use jsonl:PATH, sqlite:PATH, http(s)://..., mqtt://HOST:PORT/PREFIX)"
                     % safe_url(url))


# ------------------------------------------------------------------ forwarder
class Forwarder:
    """One thread per uplink: store outbox -> uplink, in order, retried with backoff.

    Records go out in outbox order (which is arrival order, so per-device order holds);
    a failure stops the batch and the same record is retried after base, 2*base, ...
    capped at max_backoff, so nothing behind it overtakes it.
    """

    def __init__(self, store, uplink: Uplink, log, count, base: float = 0.5, max_backoff: float = 30.0,
                 batch: int = 500, gather: float = 0.02):
        self.store, self.uplink, self.log, self.count = store, uplink, log, count
        self.base, self.max_backoff, self.batch = base, max_backoff, batch
        # after a batch that was not full, wait this long for more: under load each
        # batch (one fsync of the uplink, one COMMIT of its forwarded flags) then carries
        # ~gather x the rate, not a handful, and takes the bridge's one SQLite
        # connection from the frames it stores (and acks) far less often
        self.gather = gather
        self.backoff = base
        self._reader = None   # its own read-only connection for pending(): a WAL reader never blocks the writer
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._opened = False
        self.thread = threading.Thread(target=self._run, name="fwd-" + uplink.name, daemon=True)
        self.last_error = None

    def start(self):
        self.thread.start()

    def wake(self):
        self._wake.set()

    def stop(self, timeout: float = 5.0):
        self._stop.set()
        self._wake.set()
        self.thread.join(timeout)
        self.uplink.close()
        if self._reader is not None and not self.thread.is_alive():
            self._reader.close()
            self._reader = None

    def _pending(self):
        """The next batch, read through the forwarder's own connection (the writer's is
        shared with the link threads storing frames); the writer's if that cannot open."""
        if self._reader is None:
            try:
                self._reader = type(self.store)(self.store.path, readonly=True)
            except Exception:   # StoreError, or a store without files (tests): read through the writer
                self._reader = self.store
        return self._reader.pending(self.uplink.name, self.batch)

    def _fail(self, err, rec=None):
        self.last_error = str(err)
        self.count("uplink_errors")
        self.log("uplink_error", uplink=self.uplink.name, error=str(err), retry_s=self.backoff,
                 **({"device": rec.device, "seq": rec.seq} if rec else {}))
        if rec is not None:
            try:
                self.store.mark_failed(rec.outbox_id, str(err))
            except Exception:
                pass
        self.uplink.close()
        self._opened = False
        self._stop.wait(self.backoff)
        self.backoff = min(self.backoff * 2, self.max_backoff)

    def _run(self):
        while not self._stop.is_set():
            if not self._opened:
                try:
                    self.uplink.open()
                    self._opened = True
                except Exception as e:  # any open failure is an outage: retry
                    self._fail(e)
                    continue
            self._wake.clear()
            try:
                recs = self._pending()
            except sqlite3.Error as e:
                self.log("store_error", error=str(e))
                self._stop.wait(1.0)
                continue
            if not recs:
                self._wake.wait(0.5)
                continue
            done, err, bad = [], None, None
            for rec in recs:
                if self._stop.is_set():
                    break
                try:
                    self.uplink.send(rec)
                except Exception as e:
                    err, bad = e, rec
                    break
                done.append(rec)
            if done:
                try:
                    self.uplink.flush()
                except Exception as e:
                    err, bad, done = e, done[0], []
            if done:
                self.store.mark_forwarded([r.outbox_id for r in done])
                self.count("forwarded", len(done))
                log_many(self.log, "forwarded", [{"uplink": self.uplink.name, "device": r.device, "seq": r.seq,
                                                   "type": r.type} for r in done])
                self.last_error = None
            if err is not None:
                self._fail(err, bad)
            else:
                self.backoff = self.base
                if len(recs) < self.batch:
                    self._stop.wait(self.gather)
