"""consumables bridge: frames in from devices -> verified, deduplicated, stored, acked ->
forwarded to the supplier.

Per batch (BridgeCore.handle_batch: the chunks a link read together; handle_chunk for one):
  source budget (UDP) -> deframe (COBS + CRC) -> canonical envelope, parsed byte by byte ->
  verify COSE_Mac0 with the registry key(s) -> dedupe on (device, key generation, seq)
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
import gc
import binascii
import json
import os
import signal
import sqlite3
import sys
import threading
import time

from host_tools import bridgeconf, codec
from host_tools.links import GROUP_WAIT, LinkError, SerialLink, UdpLink
from host_tools.registry import Registry, RegistryError, registry_path, valid_device_id, write_private
from host_tools.store import MAX_SEQ_STEP, Store, StoreError, consent_is_lowering, status_path
from host_tools.uplinks import Forwarder, log_many, make_uplink
from protocol import framing, messages, schema
from protocol.errors import AuthError, DecodeError, FrameError

# the downlink types an operator may queue (send, MQTT); ack and rekey are the bridge's alone
OPERATOR_COMMANDS = ("config", "consent", "order_status", "time", "weather")
COUNTERS = ("frames", "noise", "bad_crc", "bad_mac", "malformed", "unknown_device", "replay",
            "duplicates", "stored", "acks", "forwarded", "uplink_errors", "store_errors",
            "downlinks", "bad_commands", "reacks_limited", "threads_restarted", "seq_jump", "source_limited", "rekeys")


_JSON_STR: dict = {}   # str -> its JSON text (json.dumps), for json_line; bounded


def json_line(ts: float, event: str, fields: dict) -> str:
    """json.dumps(dict(ts=ts, event=event, **fields), default=str), the same text, built
    faster for the per-message lines (frame, forwarded: one per message each) whose values
    are strings and ints: each string's JSON text is made once (device ids, links, types
    repeat) and ints are written as json writes them (int.__repr__). Any other value, or a
    field named ts or event, goes to json.dumps itself. tests/host/test_bridge_fast.py
    compares the two."""
    enc = _JSON_STR
    parts = ['{"ts": ', float.__repr__(ts) if type(ts) is float and ts - ts == 0.0 else json.dumps(ts), ', "event": ',
             enc.get(event) or _json_str(event)]
    for k, v in fields.items():
        t = type(v)
        if t is str:
            v = enc.get(v) or _json_str(v)
        elif t is int:
            v = int.__repr__(v)
        else:
            return json.dumps(dict(ts=ts, event=event, **fields), default=str)
        if k == "ts" or k == "event" or type(k) is not str:
            return json.dumps(dict(ts=ts, event=event, **fields), default=str)
        parts.append(", ")
        parts.append(enc.get(k) or _json_str(k))
        parts.append(": ")
        parts.append(v)
    parts.append("}")
    return "".join(parts)


def _json_str(s: str) -> str:
    if len(_JSON_STR) > 50000:
        _JSON_STR.clear()
    e = _JSON_STR[s] = json.dumps(s)
    return e


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
        self._write(line + "\n")

    def many(self, event, rows):
        """One line per row (a dict of fields), written and flushed at once: a group's
        frames or a forwarder's batch cost one write, not one per message (json_line)."""
        if event in self.quiet or not rows:
            return
        ts = round(time.time(), 3)
        self._write("".join([json_line(ts, event, r) + "\n" for r in rows]))

    def _write(self, text):
        with self._lock:
            try:
                self.stream.write(text)
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


# outcomes of input the bridge refuses: charged to their source's budget, logged by sample
REJECTED = frozenset(("noise", "bad_crc", "malformed", "unknown_device", "bad_mac", "replay", "seq_jump"))


class SourceBudget:
    """A token bucket per source address for input the bridge rejects.

    Every rejected datagram from a UDP sender's address (IP and port) costs one token (burst, then rate per
    second); a source with no token left has its datagrams dropped before they are even
    deframed (`source_limited`), so one noisy address cannot take the read thread's time
    from the others. Accepted frames cost nothing: a good device never runs dry. Serial
    ports have no budget: one device per port, whose REPL text is noise by design. The
    table is bounded (oldest source forgotten first)."""

    def __init__(self, burst=50, rate=20.0, max_sources=4096, clock=time.monotonic):
        self.burst, self.rate, self.max_sources, self.clock = float(burst), float(rate), max_sources, clock
        self.buckets = {}   # source -> [tokens, last refill]

    def _bucket(self, src):
        now = self.clock()
        b = self.buckets.get(src)
        if b is None:
            if len(self.buckets) >= self.max_sources:
                self.buckets.pop(next(iter(self.buckets)))
            b = self.buckets[src] = [self.burst, now]
        b[0] = min(self.burst, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        return b

    def blocked(self, src) -> bool:
        # a source never charged has no bucket (a new one would be full): accepted frames
        # neither cost a bucket nor push a noisy source's bucket out of the bounded table
        b = self.buckets.get(src)
        if b is None or b[0] >= self.burst:
            return False
        return self._bucket(src)[0] < 1.0

    def charge(self, src) -> None:
        self._bucket(src)[0] -= 1.0


def source_of(link: str):
    """The budgeted source of a route: the UDP sender's address ("udp:10.0.0.7:4210");
    None for serial links."""
    return link if link.startswith("udp:") else None


class SampledLog:
    """Rejected input is logged by sample: at most `samples` lines per event per `every`
    seconds, then one `rejected` line per period with the count of each event and how many
    lines were left out. So an attack writes a bounded number of log bytes per minute,
    however fast it sends (before: one line per rejected chunk, 40x the attack's bytes).
    Every rejection is still counted in full in the bridge's counters."""

    def __init__(self, log, every=10.0, samples=3, clock=time.monotonic):
        self.log, self.every, self.samples, self.clock = log, every, samples, clock
        self._lock = threading.Lock()
        self.start = clock()
        self.seen = {}          # event -> count in this period
        self.left_out = 0

    def __call__(self, event, **fields):
        with self._lock:
            self._roll()
            n = self.seen[event] = self.seen.get(event, 0) + 1
            if n > self.samples:
                self.left_out += 1
                return
        self.log(event, **fields)

    def _roll(self, force=False):
        now = self.clock()
        if self.seen and (force or now - self.start >= self.every):
            if self.left_out:
                self.log("rejected", period_s=round(now - self.start, 1), left_out=self.left_out, **self.seen)
            self.seen, self.left_out = {}, 0
        if not self.seen:
            self.start = now

    def flush(self):
        """The period's summary now if it is over (housekeeping calls this)."""
        with self._lock:
            self._roll()


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
        self.windows = {}                     # (device, key fingerprint) -> [epoch, max seq]: Store.window
        self.top_epoch = {}                   # device -> highest epoch of its windows in self.windows
        self.routes = {}                      # device -> (route name, reply, last seen, key): newly stored frames only
        self.reacks = reacks or ReackLimiter()
        self.sources = SourceBudget()
        self.rlog = SampledLog(self.log)      # rejected input: sampled lines + a summary per period
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

        Each chunk (one UDP datagram, or one serial frame) is budgeted, deframed and
        verified on its own, in arrival order, exactly as if it came alone: a source out
        of budget is dropped before any work, and what it is charged for is known before
        the next chunk is looked at, so batching never lets a noisy address spend more.
        Work before authentication is bounded per chunk: at most MAX_FRAME bytes are
        COBS-decoded and CRC-checked, the envelope is parsed byte by byte (linear, no CBOR
        library), and at most one HMAC per key the device may use (two in a rotation's
        grace period) is computed. The new frames are stored in one transaction per
        `group_max` (Store.store_messages: one COMMIT, one fsync), each in its key
        generation's window, and only after that COMMIT is each acked, in arrival order.
        A frame that dedupe must compare with a frame of its device still waiting in the
        group (seq not above it, another key generation, a rotation) first commits the
        group, so dedupe always sees what is stored. Returns the outcomes.
        """
        out = [None] * len(items)
        t_read = time.monotonic()   # when the link handed these over (frame -> ack latency)
        self.count("frames", len(items))
        self.registry.refresh()     # one look at the registry file per batch, not per frame
        group = []    # [(index, msg, body, reply, link, key, epoch, window, old key?, fp)] new, uncommitted
        pending = {}  # device -> (epoch, highest seq) of its frames in the group
        with self.lock:
            for i, (chunk, reply, link) in enumerate(items):
                src = source_of(link)
                if src is not None and self.sources.blocked(src):
                    self.count("source_limited")
                    self.rlog("source_limited", link=link, size=len(chunk))
                    out[i] = "source_limited"
                    continue
                out[i] = self._admit(i, chunk, reply, link, group, pending, t_read, out)
                if src is not None and out[i] in REJECTED:
                    self.sources.charge(src)
            self._commit_group(group, out, t_read)
            pending.clear()
        return out

    def _admit(self, i, chunk, reply, link, group, pending, t_read, out):
        """One chunk of a batch: its outcome, or None when it joined the group (new)."""
        v = self._verify(chunk, link)
        if v[0] is None:
            return v[1]
        msg, body, key, keys, prot, payload = v
        dev, seq = msg.device, msg.seq
        fp = keys[0][1] if keys[0][0] is key else next(f for k, f in keys if k == key)
        try:
            win = self._window(dev, fp, key)
        except (sqlite3.Error, StoreError) as e:
            return self._store_failed(e, dev, seq)
        held = pending.get(dev)
        # a device's frames in the group share one key generation and rise in seq: anything
        # else is compared with what is stored (dedupe, a rotation's resend), so store first
        if (held is not None and (held[0] != win[0] or seq <= held[1])) or len(group) >= self.group_max:
            self._commit_group(group, out, t_read)
            pending.clear()
            held = None
        epoch, max_seq = win
        if seq > max_seq and len(keys) > 1 and key == keys[0][0]:
            # a rotation: the device resends, under its new key, a message it sent under
            # the old one whose ack it lost. Same seq, same protected header and payload
            # (what the MAC covers): a retransmission, re-acked, not stored twice
            try:
                prev = self._window(dev, keys[1][1], keys[1][0])
                old_body = self.store.stored_body(dev, seq, prev[0]) if seq <= prev[1] else None
            except (sqlite3.Error, StoreError) as e:
                return self._store_failed(e, dev, seq)
            if old_body is not None and codec.parse_envelope(old_body)[2:4] == (prot, payload):
                epoch, max_seq, body = prev[0], prev[1], bytes(old_body)
        if seq <= max_seq:
            return self._old_seq(dev, seq, epoch, max_seq, body, fp, key, reply, link)
        top = held[1] if held is not None else max_seq   # the highest seq stored or waiting
        if top >= 0 and seq > top + MAX_SEQ_STEP:
            # one frame under a leaked key must not take the window to 2**40-1
            self.count("seq_jump")
            self.rlog("seq_jump", link=link, device=dev, seq=seq, max_seq=top, key_fp=fp)
            return "seq_jump"
        old_key = len(keys) > 1 and key == keys[1][0]   # a rotation's old key: rekey after the ack
        group.append((i, msg, body, reply, link, key, epoch, win, old_key, fp))
        pending[dev] = (epoch, seq)
        return None

    def _verify(self, chunk, link):
        """(msg, body, key, keys, protected, payload) of a verified message, or (None,
        outcome) for a chunk that is not one. `keys`: those the device may use now."""
        body, err = deframe(chunk)
        if err:
            self.count(err)
            self.rlog(err, link=link, size=len(chunk))
            return None, err
        dev = None
        try:
            # canonical envelope, byte-level: no CBOR library sees unauthenticated bytes
            kid, seq, prot, payload, tag = codec.parse_envelope(body)
            dev = kid.decode("ascii", "replace")
            keys = self.registry.keys_for(kid, refresh=False)   # refreshed once per batch
            if not keys:
                self.count("unknown_device")
                self.rlog("unknown_device", link=link, device=ascii(dev)[:40], error="unknown device")
                return None, "unknown_device"
            key = codec.verify_mac([keys[0][0]] if len(keys) == 1 else [k for k, _ in keys], prot, payload, tag)
            if key is None:
                self.count("bad_mac")
                self.rlog("bad_mac", link=link, device=dev, error="bad MAC")
                return None, "bad_mac"
            return codec.decode_payload(kid, seq, payload), body, key, keys, prot, payload
        except (AuthError, DecodeError) as e:
            self.count("malformed")
            self.rlog("malformed", link=link, error=str(e), **({"device": ascii(dev)[:40]} if dev else {}))
            return None, "malformed"

    def _old_seq(self, dev, seq, epoch, max_seq, body, fp, key, reply, link) -> str:
        """A seq at or below the highest stored in its window: an exact retransmission
        (re-ack) or a replay."""
        try:
            stored = self.store.stored_body(dev, seq, epoch)
            # one canonical encoding per message (SPEC): equal bytes under one key
            # = the same protected header and payload, what the MAC covers
            if stored is None or bytes(stored) != body:
                self.count("replay")
                self.rlog("replay", link=link, device=dev, seq=seq, max_seq=max_seq, key_fp=fp)
                return "replay"
        except (sqlite3.Error, StoreError) as e:
            return self._store_failed(e, dev, seq)
        # an exact retransmission: re-ack within budget; the route stays where the
        # last newly stored frame came from (a replay must not divert commands)
        self.count("duplicates")
        route = self.routes.get(dev)
        kind = "route" if seq == max_seq and route is not None and route[0] == link else "other"
        if not self.reacks.allow(dev, kind):
            self.count("reacks_limited")
            self.rlog("duplicate", link=link, device=dev, seq=seq, reack=False)
            return "duplicates"
        self.log("duplicate", link=link, device=dev, seq=seq, reack=True)
        try:
            dseq = self.store.next_down_seq(dev)
        except (sqlite3.Error, StoreError) as e:
            return self._store_failed(e, dev, seq)
        if self._send(dev, dseq, {0: messages.ACK, 1: seq}, reply, link, "ack", key):
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
                stored = [(g, self.store.store_message(g[1], g[2], g[4], self.uplinks, now, g[6], g[9]))]
            else:
                dseqs = self.store.store_messages([(g[1], g[2], g[4], g[6], g[9]) for g in group], self.uplinks, now)
                stored = list(zip(group, dseqs))
        except (sqlite3.Error, StoreError, OSError) as e:
            stored = []
            if len(group) == 1:
                out[group[0][0]] = self._store_failed(e, group[0][1].device, group[0][1].seq)
            for g in group if len(group) > 1 else ():
                try:
                    stored.append((g, self.store.store_message(g[1], g[2], g[4], self.uplinks, now, g[6], g[9])))
                except (sqlite3.Error, StoreError, OSError) as e1:
                    out[g[0]] = self._store_failed(e1, g[1].device, g[1].seq)
        group.clear()
        self.on_commit(len(stored))
        waiting = self.store.downlink_devices() if stored else set()  # one query per group
        self.count("stored", len(stored))
        acks = 0
        log_many(self.log, "frame", [{"link": g[4], "device": g[1].device, "seq": g[1].seq, "type": g[1].type}
                                     for g, _ in stored])
        routes, on_ack, on_message = self.routes, self.on_ack, self.on_message
        for (i, msg, _, reply, link, key, _, win, old_key, _), dseq in stored:
            dev, seq = msg.device, msg.seq
            if seq > win[1]:
                win[1] = seq
            routes[dev] = (link, reply, now, key)   # a fresh, verified seq: the device is here
            if self._send(dev, dseq, {0: messages.ACK, 1: seq}, reply, link, "ack", key):
                acks += 1
                on_ack(time.monotonic() - t_read)
            on_message(msg)
            if dev in waiting:
                self._deliver(dev)
            if old_key:
                self._rekey(dev, key, reply, link)
            elif msg.type == "hello" and getattr(msg, "boot", None) is not None:
                self._time_sync(dev, key, reply, link)
            out[i] = "stored"
        self.count("acks", acks)
        if stored:
            self.on_stored()

    def _rekey(self, dev, key, reply, link):
        """A frame under the old key of a rotation in its grace period: send the device the
        rotation's nonce (keys rotate), under that old key, after its ack and commands.
        Sent again after every such frame until the device speaks under the new key, so a
        lost rekey costs nothing. The route is then dropped: whether the device switched
        keys is known only from its next frame, and a command under the wrong key would
        be refused by the device but marked sent here."""
        nonce = self.registry.rekey_nonce(dev, key)
        if nonce is None:
            return
        try:
            dseq = self.store.next_down_seq(dev)
        except (sqlite3.Error, StoreError) as e:
            self.log("store_error", device=dev, error=str(e))
            return
        if self._send(dev, dseq, {0: messages.REKEY, 1: nonce}, reply, link, "rekey", key):
            self.count("rekeys")
            self.log("rekey_sent", device=dev, dseq=dseq, link=link)
        self.routes.pop(dev, None)

    def _time_sync(self, dev, key, reply, link):
        """A hello with a boot count (key 10) is a boot: after a power cut an ESP32's RTC
        starts again at 0, so the bridge answers with the wall clock, after the ack; the
        device moves its clock forward by the outage (firmware/clock.py set_wall)."""
        try:
            dseq = self.store.next_down_seq(dev)
        except (sqlite3.Error, StoreError) as e:
            self.log("store_error", device=dev, error=str(e))
            return
        if self._send(dev, dseq, {0: messages.TIME, 1: int(time.time())}, reply, link, "time", key):
            self.count("downlinks")

    def _window(self, dev: str, fp: str, key: bytes) -> list:
        """[epoch, highest stored seq] of dev's replay window under key (fingerprint fp),
        cached: the bridge is the only writer. Store.window makes a new one for a new key."""
        win = self.windows.get((dev, fp))
        if win is None:
            def adopt(stored):   # a window migrated from before key generations
                if stored is None:
                    return True
                try:
                    _, _, prot, payload, tag = codec.parse_envelope(stored)
                except (AuthError, DecodeError):
                    return False
                return codec.verify_mac([key], prot, payload, tag) is not None
            # a new window is written with its first frame, in that frame's group COMMIT;
            # until then its epoch is only here, so the next new one must be above it
            win = self.windows[(dev, fp)] = list(self.store.window(
                dev, fp, adopt, create=False, min_epoch=self.top_epoch.get(dev, -1) + 1))
            self.top_epoch[dev] = max(win[0], self.top_epoch.get(dev, -1))
        return win

    def _store_failed(self, e, dev, seq):
        self.count("store_errors")
        self.log("store_error", device=dev, seq=seq, error=str(e))
        return "store_errors"

    def _send(self, dev, dseq, payload, reply, link, what, key=None):
        """Sign with `key`: the one the device's frame verified under (during a rotation's
        grace period the device may still hold the old one), else its current key."""
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
        return self.command(device, name, fields)[0]

    def command(self, device, name, fields) -> tuple[int | None, str | None]:
        """(downlink id, None) once queued, or (None, reason) when refused. Only the types an
        operator may send (OPERATOR_COMMANDS): an ack is the bridge's alone (one for a
        message it never stored would make the device delete it). Never raises: whatever
        arrives on the command topic is counted and answered, never kills the caller."""
        try:
            if not valid_device_id(device):
                raise DecodeError("bad device id %s" % ascii(device)[:40])
            if name is None:
                raise DecodeError(str(fields.get("error")) if isinstance(fields, dict) else "bad command")
            if name not in OPERATOR_COMMANDS:
                raise DecodeError("%s is not a command (use %s)" % (ascii(name)[:40], ", ".join(OPERATOR_COMMANDS)))
            if not isinstance(fields, dict):
                raise DecodeError("command fields must be a map")
            command_payload(name, fields)
            if name == "consent":
                # consent may be lowered remotely, never raised: a raise needs the customer's
                # confirmation, recorded by `consumables send ... --customer-confirmed`
                floor = self.store.consent_floor(device)
                if not consent_is_lowering(fields.get("level"), floor):
                    self.count("bad_commands")
                    self.log("consent_raise_refused", device=device, level=fields.get("level"), current=floor)
                    return None, "consent may only be lowered here (now %s)" % floor
            did = self.store.queue_downlink(device, name, fields)
        except (DecodeError, ValueError, TypeError, RecursionError) as e:
            self.count("bad_commands")
            self.log("bad_command", device=ascii(device)[:40], error=str(e)[:200])
            return None, str(e)[:200]
        except (sqlite3.Error, StoreError) as e:
            self.count("store_errors")
            self.log("store_error", device=device, error=str(e))
            return None, "store error"
        self.log("command_queued", device=device, type=name, id=did)
        try:
            self.deliver_pending()
        except (sqlite3.Error, StoreError) as e:   # queued and durable: housekeeping retries
            self.log("store_error", error=str(e))
        return did, None

    def _deliver(self, device: str) -> None:
        """Send a device's queued commands on its route (caller holds the lock)."""
        route = self.routes.get(device)
        if route is None:
            return
        link, reply, _, key = route
        if key not in [k for k, _ in self.registry.keys_for(device)]:
            return   # that key was rotated out or replaced: wait for a frame under a valid one
        for did, dev, name, fields in self.store.pending_downlinks(device):
            try:
                if name not in OPERATOR_COMMANDS or not isinstance(fields, dict):
                    raise DecodeError("%s is not an operator command" % ascii(name)[:40])
                payload = command_payload(name, fields)
                messages.validate(payload, messages.DOWNLINK)
            except (DecodeError, TypeError, ValueError) as e:  # queued by hand into the DB? drop it, loudly
                self.count("bad_commands")
                self.log("bad_command", device=dev, id=did, error=str(e))
                self.store.mark_downlink_sent(did, -1, "rejected")
                continue
            if self.registry.key_for(dev) is None:
                return
            dseq = self.store.next_down_seq(dev)
            if not self._send(dev, dseq, payload, reply, link, name, key):
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
            u.on_command = self.core.command
        self.status_every, self.print_every = status_every, print_every
        self.status_file = status_path(self.store.path)
        self._reader = None   # the status file's read-only connection (opened on first use)
        self._stop = threading.Event()
        self._house = threading.Thread(target=self._housekeeping, name="bridge-house", daemon=True)
        self.watch_every = 1.0
        self._watch = threading.Thread(target=self._watchdog, name="bridge-watchdog", daemon=True)
        self.started = time.time()

    def _wake(self):
        for f in self.forwarders:
            f.wake()

    def start(self):
        self.store.defer_checkpoints()   # housekeeping checkpoints, not a link thread's COMMIT
        for f in self.forwarders:
            f.start()
        for link in self.links:
            link.start(self.core.handle_chunk, self.core.handle_batch)
        self._house.start()
        self._watch.start()
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

    def status(self, devices: bool = True) -> dict:
        # read through a connection of its own: in WAL mode a reader never blocks the
        # writer, so listing thousands of devices does not hold up a group commit
        r = self._status_reader()
        c = self.count.snapshot()
        c["queued"] = r.queued()
        doc = {"updated_at": time.time(), "started_at": self.started, "pid": os.getpid(),
               "counters": c,
               "links": [link.name for link in self.links],
               "uplinks": [{"name": f.uplink.name, "queued": r.queued(f.uplink.name),
                            "last_error": f.last_error} for f in self.forwarders]}
        if devices:
            doc["devices"] = r.devices()
        return doc

    def _status_reader(self) -> Store:
        if self._reader is None:
            self._reader = Store(self.store.path, readonly=True)
        return self._reader

    def write_status(self):
        """Atomic rewrite of DB.status.json (status()), which the monitor reads."""
        try:
            # one write (json.dump writes piece by piece: ~10x slower), 0600, atomic; the
            # devices as Store.devices_json builds them (stored JSON spliced in, not re-encoded)
            head = json.dumps(self.status(devices=False), default=str)
            write_private(self.status_file, '%s, "devices": %s}' % (head[:-1], self._status_reader().devices_json()))
        except (OSError, sqlite3.Error, StoreError) as e:
            self.log("status_error", error=str(e))

    def _housekeeping(self):
        next_status = next_print = time.monotonic()
        while not self._stop.wait(0.2):
            try:
                self.core.deliver_pending()
                self.core.rlog.flush()
                self.store.checkpoint()   # the WAL's copy into the database, off the commit path
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
            except sqlite3.Error as e:
                self.log("store_error", error=str(e))
            except Exception as e:   # a bug must not stop delivery for good: log, go on
                self.log("housekeeping_error", error="%s: %s" % (type(e).__name__, e))

    def _watchdog(self):
        while not self._stop.wait(self.watch_every):
            self.check_threads()

    def check_threads(self) -> list[str]:
        """Restart every worker thread (housekeeping, forwarders, link readers) that died,
        which only an exception no handler expected can do; returns their names."""
        dead = []
        if self._stop.is_set():
            return dead
        if not self._house.is_alive():
            dead.append(self._house.name)
            self._house = threading.Thread(target=self._housekeeping, name="bridge-house", daemon=True)
            self._house.start()
        for f in self.forwarders:
            if not f.thread.is_alive() and not f._stop.is_set():
                dead.append(f.thread.name)
                f._opened = False
                f.thread = threading.Thread(target=f._run, name=f.thread.name, daemon=True)
                f.thread.start()
        for link in self.links:
            if link.thread is not None and not link.thread.is_alive() and not link._stop.is_set():
                dead.append(link.name)
                link.start(self.core.handle_chunk, self.core.handle_batch)
        for name in dead:
            self.count("threads_restarted")
            self.log("thread_restarted", thread=name)
        return dead


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
    p.add_argument("--group-wait", type=float, default=1000 * GROUP_WAIT, metavar="MS",
                   help="UDP: when datagrams arrive together, wait this long once for more before their COMMIT "
                        "(default %g: never; 2 saves ~20%%%% CPU per message at 5,000 msg/s, adds ~6 ms "
                        "to the ack)" % (1000 * GROUP_WAIT))
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
        if not 0 <= a.group_wait <= 100:
            raise SystemExit2("--group-wait must be 0..100 ms")
    except SystemExit2 as e:
        return _fail(prog, e)

    # every file the bridge makes (DB, WAL, status, jsonl, sqlite uplinks) is its user's
    # alone: telemetry, orders and the audit trail are not for other users of the host
    os.umask(0o077)
    log = JsonLog(quiet=bridgeconf.PER_MESSAGE if a.quiet else ())
    try:
        uplinks = [make_uplink(u) for u in a.uplink]
        registry = Registry(registry_path(a.registry), log)
        store = Store(a.db)
        wait = a.group_wait / 1000.0 if a.group_commit > 1 else 0.0   # one COMMIT per frame: nothing to wait for
        links = [SerialLink(port, a.baud, log) for port in a.serial] + [UdpLink(u, log, wait) for u in a.listen]
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
    # The long-lived objects built so far (registry, codec tables, HA schemas) need no
    # cyclic collection: freeze them, so the full collections the frame path triggers do not
    # walk them again while acks wait.
    gc.collect()
    gc.freeze()
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
