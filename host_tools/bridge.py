"""consumables bridge: frames in from devices -> verified, deduplicated, stored, acked ->
forwarded to the supplier.

Per chunk (BridgeCore.handle_chunk; handle_batch for the chunks a link read together):
  deframe (COBS + CRC) -> verify COSE_Mac0 with the registry key -> dedupe on (device, seq)
  -> new: store + outbox rows + downlink counter in ONE SQLite commit, then ack (group
     commit: the new frames of one batch share that commit, each acked after it)
  -> exact duplicate of a stored frame: ack again (the first ack may be lost), no store,
     within a re-ack budget per device (ReackLimiter); never moves the reply route
  -> seq <= highest stored and different bytes: replay, rejected, no ack
The ack is the downlink {0: 16, 1: seq}, COSE_Mac0 with AAD b"d" and the device's own
downlink counter as Partial IV (leased in blocks: Store.next_down_seq), sent back to where
the frame came from. Only a newly stored frame sets the device's reply route (where queued
commands go): a replayed frame from another address cannot divert them. Queued commands
follow the ack of a newly stored frame, while the device is awake and listening.

Forwarding is decoupled: one uplinks.Forwarder per uplink reads the store's outbox.
"""
from __future__ import annotations

import argparse
import binascii
import json
import os
import signal
import sqlite3
import sys
import threading
import time

from host_tools import bridgeconf, codec
from host_tools.links import LinkError, SerialLink, UdpLink
from host_tools.registry import Registry, RegistryError, registry_path
from host_tools.store import Store, StoreError, consent_is_lowering, status_path
from host_tools.uplinks import Forwarder, make_uplink
from protocol import framing, messages, schema
from protocol.errors import AuthError, DecodeError, FrameError

COUNTERS = ("frames", "noise", "bad_crc", "bad_mac", "malformed", "unknown_device", "replay",
            "duplicates", "stored", "acks", "forwarded", "uplink_errors", "store_errors",
            "downlinks", "bad_commands", "reacks_limited")


class JsonLog:
    """One JSON object per line (to stderr by default): {"ts": ..., "event": ..., ...}."""

    def __init__(self, stream=None, quiet=()):
        self.stream = stream or sys.stderr
        self.quiet = set(quiet)
        self._lock = threading.Lock()

    def __call__(self, event, **fields):
        if event in self.quiet:
            return
        line = json.dumps(dict(ts=round(time.time(), 3), event=event, **fields), default=str)
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass


class Counters:
    def __init__(self):
        self._lock = threading.Lock()
        self.c = dict.fromkeys(COUNTERS, 0)

    def __call__(self, name, n=1):
        with self._lock:
            self.c[name] = self.c.get(name, 0) + n

    def __getitem__(self, name):
        return self.c.get(name, 0)

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self.c)


def deframe(chunk: bytes) -> tuple[bytes | None, str | None]:
    """(body, None) or (None, "noise" | "bad_crc"): text and garbage are noise; a frame that
    decodes but fails its CRC is line damage. binascii.crc_hqx is CRC-16/CCITT-FALSE."""
    if len(chunk) > framing.MAX_FRAME:
        return None, "noise"
    try:
        raw = codec.cobs_decode(chunk)
    except FrameError:
        return None, "noise"
    if len(raw) < 3:
        return None, "noise"
    if binascii.crc_hqx(raw[:-2], 0xFFFF) != (raw[-2] << 8 | raw[-1]):
        return None, "bad_crc"
    return raw[:-2], None


def command_payload(name: str, fields: dict) -> dict:
    """Named command -> wire payload; `time` without unix gets the time of delivery."""
    if name == "time" and "unix" not in fields:
        fields = dict(fields, unix=int(time.time()))
    return schema.from_named(name, fields)


class ReackLimiter:
    """Token buckets that bound re-acks of duplicates, per device.

    A stop-and-wait device only ever needs the re-ack of its latest stored frame, resent
    from where that frame came from (its route) no faster than its ack timeout (4 s, then
    doubling). Those draw on the device's `route` bucket. Everything else (an older seq,
    or any seq from another address: a replay, or a device whose address just changed)
    draws on the device's `other` bucket, shared by all addresses so spoofing many of
    them buys nothing. A duplicate over budget is counted (duplicates, reacks_limited),
    not answered. Defaults: route 3 at once then 1 per 2 s; other 3 then 1 per 5 s.
    """

    def __init__(self, route=(3, 0.5), other=(3, 0.2), clock=time.monotonic):
        self.conf = {"route": route, "other": other}
        self.clock = clock
        self.buckets = {}   # (device, kind) -> [tokens, last refill]

    def allow(self, device: str, kind: str) -> bool:
        burst, rate = self.conf[kind]
        now = self.clock()
        b = self.buckets.get((device, kind))
        if b is None:
            b = self.buckets[(device, kind)] = [float(burst), now]
        b[0] = min(float(burst), b[0] + (now - b[1]) * rate)
        b[1] = now
        if b[0] >= 1.0:
            b[0] -= 1.0
            return True
        return False


class BridgeCore:
    """Transport-independent bridge logic; thread-safe (one lock around each chunk)."""

    def __init__(self, store: Store, registry: Registry, uplinks=(), log=None, counters=None,
                 on_stored=None, fresh_s: float = 120.0, reacks: ReackLimiter | None = None,
                 group_max: int = 256):
        self.store, self.registry = store, registry
        self.uplinks = list(uplinks)          # uplink names: one outbox row each per message
        self.log = log or (lambda event, **kw: None)
        self.count = counters or Counters()
        self.on_stored = on_stored or (lambda: None)
        self.fresh_s = fresh_s
        self.lock = threading.RLock()
        self.max_seq = store.max_seqs()       # cache: the bridge is the only writer
        self.routes = {}                      # device -> (route name, reply, last seen): newly stored frames only
        self.reacks = reacks or ReackLimiter()
        self.group_max = max(1, int(group_max))  # frames per COMMIT at most (1: one fsync per frame)
        self.on_commit = lambda n: None       # hooks (metrics, Home Assistant): frames per commit,
        self.on_message = lambda msg: None    # and each newly stored message after its ack,
        self.on_ack = lambda seconds: None    # and its frame -> ack time

    # ------------------------------------------------------------------ uplink frames
    def handle_chunk(self, chunk: bytes, reply, link: str = "?") -> str:
        """Process one chunk; returns the outcome (a counter name) for tests and benchmarks."""
        return self.handle_batch([(chunk, reply, link)])[0]

    def handle_batch(self, items) -> list[str]:
        """Process chunks that arrived together [(chunk, reply, link)]: group commit.

        Each is deframed and verified on its own; the new ones are stored in one
        transaction per `group_max` (Store.store_messages: one COMMIT, one fsync), and
        only after that COMMIT is each acked, in arrival order. A frame whose seq is not
        above its device's frames waiting in the group (a retransmission, or a replay)
        first commits the group, so dedupe always sees what is stored. Returns the outcomes.
        """
        out = [None] * len(items)
        t_read = time.monotonic()   # when the link handed these over (frame -> ack latency)
        self.count("frames", len(items))
        self.registry.refresh()     # one look at the registry file per batch, not per frame
        group = []   # [(index, msg, body, reply, link, key)] verified, new, not yet committed
        pending = {}  # device -> highest seq in the group
        with self.lock:
            for i, (chunk, reply, link) in enumerate(items):
                msg, body, key = self._verify(chunk, link)
                if msg is None:
                    out[i] = body
                    continue
                if msg.seq <= pending.get(msg.device, -1) or len(group) >= self.group_max:
                    self._commit_group(group, out, t_read)
                    pending.clear()
                if msg.seq <= self.max_seq.get(msg.device, -1):
                    out[i] = self._old_seq(msg, body, reply, link)
                else:
                    group.append((i, msg, body, reply, link, key))
                    pending[msg.device] = msg.seq
            self._commit_group(group, out, t_read)
        return out

    def _verify(self, chunk, link):
        """(msg, body, key), or (None, outcome, None) for a chunk that is not a verified message."""
        body, err = deframe(chunk)
        if err:
            self.count(err)
            self.log(err, link=link, size=len(chunk))
            return None, err, None
        called = []

        def key_for(kid):
            called.append(kid)
            key = self.registry.key_for(kid, refresh=False)   # refreshed once per batch
            called.append(key)
            return key

        try:
            return codec.decode_body(body, key_for), body, called[1]  # the key signs its ack
        except AuthError as e:
            if called and self.registry.key_for(called[0]) is None:
                what, dev = "unknown_device", called[0].decode("ascii", "replace")
            elif called:
                what, dev = "bad_mac", called[0].decode("ascii", "replace")
            else:
                what, dev = "malformed", None
            self.count(what)
            self.log(what, link=link, device=dev, error=str(e))
            return None, what, None
        except DecodeError as e:
            self.count("malformed")
            self.log("malformed", link=link, error=str(e))
            return None, "malformed", None

    def _old_seq(self, msg, body, reply, link) -> str:
        """A seq at or below the highest stored: an exact retransmission (re-ack) or a replay."""
        dev, seq = msg.device, msg.seq
        try:
            stored = self.store.stored_body(dev, seq)
            if stored is None or bytes(stored) != body:
                self.count("replay")
                self.log("replay", link=link, device=dev, seq=seq, max_seq=self.max_seq[dev])
                return "replay"
        except (sqlite3.Error, StoreError) as e:
            return self._store_failed(e, dev, seq)
        # an exact retransmission: re-ack within budget; the route stays where the
        # last newly stored frame came from (a replay must not divert commands)
        self.count("duplicates")
        route = self.routes.get(dev)
        kind = "route" if seq == self.max_seq[dev] and route is not None and route[0] == link else "other"
        if not self.reacks.allow(dev, kind):
            self.count("reacks_limited")
            self.log("duplicate", link=link, device=dev, seq=seq, reack=False)
            return "duplicates"
        self.log("duplicate", link=link, device=dev, seq=seq, reack=True)
        try:
            dseq = self.store.next_down_seq(dev)
        except (sqlite3.Error, StoreError) as e:
            return self._store_failed(e, dev, seq)
        if self._send(dev, dseq, {0: messages.ACK, 1: seq}, reply, link, "ack"):
            self.count("acks")
        return "duplicates"

    def _commit_group(self, group, out, t_read: float) -> None:
        """Store a group with one COMMIT, then ack each frame (caller holds the lock).
        If the group's commit fails, each frame is tried alone, so one bad frame cannot
        keep the others from being stored; a frame that is not stored is never acked."""
        if not group:
            return
        now = time.time()
        try:
            if len(group) == 1:
                g = group[0]
                stored = [(g, self.store.store_message(g[1], g[2], g[4], self.uplinks, now))]
            else:
                dseqs = self.store.store_messages([(g[1], g[2], g[4]) for g in group], self.uplinks, now)
                stored = list(zip(group, dseqs))
        except (sqlite3.Error, StoreError, OSError) as e:
            stored = []
            if len(group) == 1:
                out[group[0][0]] = self._store_failed(e, group[0][1].device, group[0][1].seq)
            for g in group if len(group) > 1 else ():
                try:
                    stored.append((g, self.store.store_message(g[1], g[2], g[4], self.uplinks, now)))
                except (sqlite3.Error, StoreError, OSError) as e1:
                    out[g[0]] = self._store_failed(e1, g[1].device, g[1].seq)
        group.clear()
        self.on_commit(len(stored))
        waiting = self.store.downlink_devices() if stored else set()  # one query per group
        self.count("stored", len(stored))
        acks = 0
        for (i, msg, _, reply, link, key), dseq in stored:
            dev, seq = msg.device, msg.seq
            self.max_seq[dev] = seq
            self.log("frame", link=link, device=dev, seq=seq, type=msg.type)
            self.routes[dev] = (link, reply, now)   # a fresh, verified seq: the device is here
            if self._send(dev, dseq, {0: messages.ACK, 1: seq}, reply, link, "ack", key):
                acks += 1
                self.on_ack(time.monotonic() - t_read)
            self.on_message(msg)
            if dev in waiting:
                self._deliver(dev)
            out[i] = "stored"
        self.count("acks", acks)
        if stored:
            self.on_stored()

    def _store_failed(self, e, dev, seq):
        self.count("store_errors")
        self.log("store_error", device=dev, seq=seq, error=str(e))
        return "store_errors"

    def _send(self, dev, dseq, payload, reply, link, what, key=None):
        key = key or self.registry.key_for(dev)
        if key is None:  # removed from the registry since the frame was verified
            self.log("downlink_failed", device=dev, link=link, what=what, error="unknown device")
            return False
        if what == "ack":
            frame = codec.encode_ack(key, dev, dseq, payload[1])
        else:
            frame = codec.encode_downlink(key, dev, dseq, payload)
        try:
            reply(frame)
        except (LinkError, OSError) as e:
            self.log("downlink_failed", device=dev, link=link, what=what, error=str(e))
            return False
        return True

    # ------------------------------------------------------------------ commands
    def queue_command(self, device: str, name, fields: dict) -> int | None:
        """Queue a downlink command (from MQTT or tests); invalid ones are logged and dropped."""
        if name is None:
            self.count("bad_commands")
            self.log("bad_command", device=device, error=fields.get("error"))
            return None
        try:
            command_payload(name, fields)
        except DecodeError as e:
            self.count("bad_commands")
            self.log("bad_command", device=device, error=str(e))
            return None
        if name == "consent":
            # consent may be lowered remotely, never raised: a raise needs the customer's
            # confirmation, recorded by `consumables send ... --customer-confirmed`
            floor = self.store.consent_floor(device)
            if not consent_is_lowering(fields.get("level"), floor):
                self.count("bad_commands")
                self.log("consent_raise_refused", device=device, level=fields.get("level"), current=floor)
                return None
        did = self.store.queue_downlink(device, name, fields)
        self.log("command_queued", device=device, type=name, id=did)
        self.deliver_pending()
        return did

    def _deliver(self, device: str) -> None:
        """Send a device's queued commands on its route (caller holds the lock)."""
        route = self.routes.get(device)
        if route is None:
            return
        link, reply, _ = route
        for did, dev, name, fields in self.store.pending_downlinks(device):
            try:
                payload = command_payload(name, fields)
            except DecodeError as e:  # queued by hand into the DB? drop it, loudly
                self.count("bad_commands")
                self.log("bad_command", device=dev, id=did, error=str(e))
                self.store.mark_downlink_sent(did, -1, "rejected")
                continue
            if self.registry.key_for(dev) is None:
                return
            dseq = self.store.next_down_seq(dev)
            if not self._send(dev, dseq, payload, reply, link, name):
                return  # link down: keep it queued, retry when the device is seen again
            self.store.mark_downlink_sent(did, dseq, link)
            self.count("downlinks")
            self.log("downlink", device=dev, type=name, dseq=dseq, link=link, id=did)

    def deliver_pending(self) -> None:
        """Deliver queued commands to devices seen recently (a serial board listens; a
        sleeping Wi-Fi device gets its commands right after its next uplink's ack)."""
        with self.lock:
            now = time.time()
            devs = {d for _, d, _, _ in self.store.pending_downlinks()}
            for dev in sorted(devs):
                r = self.routes.get(dev)
                if r and now - r[2] <= self.fresh_s:
                    self._deliver(dev)


class Bridge:
    """Runs a BridgeCore with links, forwarders and the status file."""

    def __init__(self, db, registry: Registry, uplinks, links, log=None, status_every: float = 1.0,
                 print_every: float = 10.0, backoff: float = 0.5, max_backoff: float = 30.0, fresh_s: float = 120.0,
                 group_max: int = 256):
        self.log = log or JsonLog()
        self.count = Counters()
        self.store = db if isinstance(db, Store) else Store(db)
        self.registry = registry
        self.uplinks = list(uplinks)
        self.links = list(links)
        self.forwarders = [Forwarder(self.store, u, self.log, self.count, backoff, max_backoff) for u in self.uplinks]
        self.core = BridgeCore(self.store, registry, [u.name for u in self.uplinks], self.log, self.count,
                               on_stored=self._wake, fresh_s=fresh_s, group_max=group_max)
        for u in self.uplinks:
            u.on_command = self.core.queue_command
        self.status_every, self.print_every = status_every, print_every
        self.status_file = status_path(self.store.path)
        self._reader = None   # the status file's read-only connection (opened on first use)
        self._stop = threading.Event()
        self._house = threading.Thread(target=self._housekeeping, name="bridge-house", daemon=True)
        self.started = time.time()

    def _wake(self):
        for f in self.forwarders:
            f.wake()

    def start(self):
        for f in self.forwarders:
            f.start()
        for link in self.links:
            link.start(self.core.handle_chunk, self.core.handle_batch)
        self._house.start()
        self.log("bridge_started", links=[link.name for link in self.links],
                 uplinks=[u.name for u in self.uplinks], db=self.store.path)
        return self

    def stop(self):
        self._stop.set()
        for link in self.links:
            link.stop()
        for f in self.forwarders:
            f.stop()
        if self._house.is_alive():
            self._house.join(3)
        self.write_status()
        self.log("bridge_stopped", **self.count.snapshot())
        if self._reader is not None:
            self._reader.close()
        self.store.close()

    def status(self) -> dict:
        # read through a connection of its own: in WAL mode a reader never blocks the
        # writer, so listing thousands of devices does not hold up a group commit
        if self._reader is None:
            self._reader = Store(self.store.path, readonly=True)
        r = self._reader
        c = self.count.snapshot()
        c["queued"] = r.queued()
        return {"updated_at": time.time(), "started_at": self.started, "pid": os.getpid(),
                "counters": c,
                "links": [link.name for link in self.links],
                "uplinks": [{"name": f.uplink.name, "queued": r.queued(f.uplink.name),
                             "last_error": f.last_error} for f in self.forwarders],
                "devices": r.devices()}

    def write_status(self):
        """Atomic rewrite of DB.status.json, which the monitor reads."""
        try:
            doc = self.status()
            tmp = str(self.status_file) + ".tmp"
            with open(tmp, "w") as f:
                f.write(json.dumps(doc, default=str))  # json.dump writes piece by piece: ~10x slower
            os.replace(tmp, self.status_file)
        except (OSError, sqlite3.Error, StoreError) as e:
            self.log("status_error", error=str(e))

    def _housekeeping(self):
        next_status = next_print = time.monotonic()
        while not self._stop.wait(0.2):
            try:
                self.core.deliver_pending()
            except sqlite3.Error as e:
                self.log("store_error", error=str(e))
            now = time.monotonic()
            if now >= next_status:
                self.write_status()
                # a big fleet's status takes a while to build: keep it under ~5% of the time
                next_status = now + max(self.status_every, 20 * (time.monotonic() - now))
            if self.print_every and now >= next_print:
                c = self.count.snapshot()
                c["queued"] = self.store.queued()
                self.log("counters", **c)
                next_print = now + self.print_every


# ---------------------------------------------------------------------- CLI
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line, exit 2 (argparse would print usage too)
        raise SystemExit2(message)


class SystemExit2(Exception):
    pass


def _fail(prog, msg) -> int:
    print("%s: error: %s" % (prog, msg), file=sys.stderr)
    return 2


def bridge_parser(prog="consumables bridge", description="Receive device frames (serial, UDP), verify, store, "
                                                           "ack, forward.") -> argparse.ArgumentParser:
    """The bridge's options (`consumables doctor` checks a setup given by the same ones)."""
    p = _Parser(prog=prog, description=description)
    p.add_argument("--serial", action="append", default=[], metavar="PORT", help="serial port (repeatable)")
    p.add_argument("--baud", type=int, default=115200, help="serial baud rate (default 115200)")
    p.add_argument("--listen", action="append", default=[], metavar="udp://HOST:PORT", help="UDP listen address")
    p.add_argument("--uplink", action="append", default=[], metavar="URL",
                   help="jsonl:PATH | sqlite:PATH | http(s)://URL[?format=cbor] | mqtt://HOST:PORT/PREFIX")
    p.add_argument("--registry", help="device registry JSON (default $CONSUMABLES_REGISTRY or "
                                      "~/.config/smart-consumables/registry.json)")
    p.add_argument("--db", default=os.environ.get("CONSUMABLES_DB", "bridge.sqlite"),
                   help="bridge database (default ./bridge.sqlite or $CONSUMABLES_DB)")
    p.add_argument("--print-every", type=float, default=10.0, help="seconds between counter log lines")
    p.add_argument("--group-commit", type=int, default=256, metavar="N",
                   help="frames that arrive together share one durable COMMIT, at most N (default 256; "
                        "1: one COMMIT per frame)")
    bridgeconf.add_arguments(p)
    return p


def main_bridge(argv=None) -> int:
    prog = "consumables bridge"
    p = bridge_parser(prog)
    try:
        try:
            a = bridgeconf.parse_with_config(p, argv)
        except bridgeconf.ConfigError as e:
            raise SystemExit2(str(e)) from None
        if not a.uplink:
            raise SystemExit2("at least one --uplink URL is required")
        if not a.serial and not a.listen:
            raise SystemExit2("nothing to listen on: give --serial PORT and/or --listen udp://HOST:PORT")
        if a.baud <= 0:
            raise SystemExit2("--baud must be positive")
        if not 1 <= a.group_commit <= 10000:
            raise SystemExit2("--group-commit must be 1..10000")
    except SystemExit2 as e:
        return _fail(prog, e)

    log = JsonLog(quiet=bridgeconf.PER_MESSAGE if a.quiet else ())
    try:
        uplinks = [make_uplink(u) for u in a.uplink]
        registry = Registry(registry_path(a.registry), log)
        store = Store(a.db)
        links = [SerialLink(port, a.baud, log) for port in a.serial] + [UdpLink(u, log) for u in a.listen]
        for link in links:
            link.open()  # an unreadable port or a busy UDP port is an error now, not a retry loop
    except (ValueError, RegistryError, StoreError, LinkError, ImportError) as e:
        return _fail(prog, e)

    bridge = Bridge(store, registry, uplinks, links, log, print_every=a.print_every, group_max=a.group_commit)
    try:
        extras = bridgeconf.attach(bridge, a, log)   # Home Assistant, metrics
    except (ValueError, ImportError) as e:
        store.close()
        return _fail(prog, e)
    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: done.set())
    bridge.start()
    extras.start()
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    extras.stop()
    bridge.stop()   # links first (a batch being committed finishes and is acked), then the store
    return 0


if __name__ == "__main__":
    sys.exit(main_bridge())
