"""Durable outbox: every uplink message is on flash before it is sent, until acked.

Layout: one file per message, `<dir>/<seq>.<cls><consent>.cbor`, the CBOR payload (not the
envelope: the MAC is rebuilt at send time, deterministically, and the key never touches
flash twice). Written with store.write_atomic (tmp, flush, rename), removed on ack.
Why not an append-only log: a log needs a header or tail rewrite on every ack and periodic
compaction, i.e. more writes and a second commit protocol. On LittleFS (the ESP32 default)
files of a few dozen bytes are *inlined* in the directory's metadata pair, so a message
costs one metadata commit, no extra block, and LittleFS levels the wear; a rename is its
atomic commit. Boot cost is one directory listing: class and consent live in the name.

  cls  'l' periodic level report: dropped first (oldest first) when the outbox is full
       'h' hello: superseded by a newer hello, otherwise kept
       'k' everything else (order requests, usage, events): never dropped
  consent  required_consent(payload): a consent downgrade purges what it no longer allows

Dropped by policy (old level reports making room, superseded hellos, consent purges): the
file is renamed to the marker `<dir>/d<N>` (N = the count for the device's life), then the
marker d<N-1> removed, so the count is persisted by the same atomic rename that drops the
message (a cut in between leaves two markers; boot keeps the highest). The agent reports it
(usage key 3, hello key 11) so the supplier can tell a by-design gap from a loss. The oldest
message is never dropped for room: it may be in flight (or was, before a reboot), and a
dropped message must never have been delivered.
Flash full (OSError, e.g. ENOSPC on LittleFS): put() drops a level report and retries; with
none left it refuses like a full outbox, and hands the seq back (nothing used it).

Bounds: at most max_count files / max_bytes payload bytes. Level reports may only use
max_count - reserve files (and max_bytes - reserve_bytes): the reserve is headroom that
keeps room for orders even when the bridge is gone for a week. When the outbox is full of
kept messages a level report is refused (put returns None); a kept message is refused
(OutboxFull) only at the hard bound, after every level report has been dropped.

Sequence numbers never repeat: `<dir>/seq` holds a high-water mark HW ("every seq < HW may
have been used"). Before handing out seq == HW we persist HW + LEASE, so flash sees one
write per LEASE messages, and a reboot resumes at the stored HW: it skips ahead, never back.

Sending is stop-and-wait in seq order: next_due() gives the oldest message when nothing is
in flight, or the in-flight one again when its ack timed out (timeout doubles per retry up
to max_timeout_ms). Times are ticks_ms values from the caller (real time, not the
accelerated simulation clock: the bridge answers in real time).
"""
import os

from firmware import clock, store
from firmware.compat import const
from protocol import cbor, messages

LEASE = const(16)
_EXT = ".cbor"

# Heap notes (a board loads this as .mpy into a 64 KB heap): every function is a raw-code
# object (~35 bytes plus its bytecode) and every distinct name a qstr interned for good, so
# helpers used once are folded into their caller, and the file name / marker formats are
# spelled out where used (one shared qstr each) rather than wrapped in methods.


class OutboxFull(Exception):
    pass


class ConsentError(Exception):
    pass


class Outbox:
    def __init__(self, path="/outbox", max_count=32, max_bytes=4096, reserve=8,
                 reserve_bytes=1024, timeout_ms=4000, max_timeout_ms=120000, consent=0):
        self.path = path
        # (count, bytes) bounds for kept messages, then for level reports (minus the reserve)
        self._lim = (max_count, max_bytes, max_count - reserve, max_bytes - reserve_bytes)
        self.timeout_ms = timeout_ms
        self.max_timeout_ms = max_timeout_ms
        self.consent = consent
        self.dropped = 0      # dropped by policy, for the device's life (the d<N> marker)
        self.refused = 0      # messages refused (full, or outside consent)
        # index, oldest first: parallel lists of seq, class char, consent needed, size
        self._seq = []
        self._cls = []
        self._req = []
        self._size = []
        self.nbytes = 0
        self._inflight = None
        self._sent_ms = 0
        self._wait = timeout_ms
        store.makedirs(path)
        rec = store.load(path + "/seq")
        self._hw = self.next_seq = rec.get("hw", 0) if isinstance(rec, dict) else 0
        # ---- boot: one directory listing rebuilds the index -------------------------
        items = []
        for name in os.listdir(path):
            full = path + "/" + name
            if name.endswith(store.TMP):
                # a message whose put() never returned: it was not accepted; drop it
                if name.endswith(_EXT + store.TMP):
                    store.remove(full)
                continue
            if name[0] == "d":
                try:
                    n = int(name[1:])
                except ValueError:
                    continue
                if n > self.dropped:
                    if self.dropped:
                        store.remove("%s/d%d" % (path, self.dropped))
                    self.dropped = n
                else:
                    store.remove(full)
                continue
            if not name.endswith(_EXT):
                continue
            try:
                s, tag = name[:-len(_EXT)].split(".")
                seq = int(s)
                req = int(tag[1:])
                size = os.stat(full)[6]
            except (ValueError, OSError):
                continue
            items.append((seq, tag[0], req, size))
        items.sort()
        for seq, c, req, size in items:
            self._seq.append(seq)
            self._cls.append(c)
            self._req.append(req)
            self._size.append(size)
            self.nbytes += size
            if seq >= self.next_seq:   # cannot happen with a sane lease; never go back
                self.next_seq = seq + 1

    # ---- queries --------------------------------------------------------------
    def __len__(self):
        return len(self._seq)

    def seqs(self):
        return list(self._seq)

    def _name(self, i):
        return "%s/%d.%s%d%s" % (self.path, self._seq[i], self._cls[i], self._req[i], _EXT)

    def read(self, seq):
        """The stored payload bytes (CBOR) of message seq, or None."""
        i = self._index(seq)
        return None if i < 0 else store.read_bytes(self._name(i))

    def _index(self, seq):
        s = self._seq
        return s.index(seq) if seq in s else -1

    # ---- put ------------------------------------------------------------------
    def put(self, payload):
        """Store payload under a new seq; return the seq, or None if a level report was
        refused for lack of room. Raises ConsentError outside the consent (the single
        gate every uplink message passes) and OutboxFull for a kept message at the bound."""
        req = messages.required_consent(payload)
        if req > self.consent:
            self.refused += 1
            raise ConsentError("message needs consent %d" % req)
        data = cbor.dumps(payload)
        n = len(data)
        t = payload.get(0, messages.LEVEL)
        c = "l" if t == messages.LEVEL else "h" if t == messages.HELLO else "k"
        lim = self._lim
        cmax, bmax = (lim[2], lim[3]) if c == "l" else (lim[0], lim[1])
        if c == "h":
            self._drop_class("h", len(self._seq))
        while True:
            if len(self._seq) < cmax and self.nbytes + n <= bmax:
                seq = self.next_seq
                try:
                    if seq >= self._hw:
                        hw = seq + LEASE
                        store.save(self.path + "/seq", {"hw": hw})   # committed before seq is used
                        self._hw = hw
                    store.write_atomic("%s/%d.%s%d%s" % (self.path, seq, c, req, _EXT), data)
                    # only now is seq used: after a failed write it is handed out again
                    self.next_seq = seq + 1
                    self._seq.append(seq)
                    self._cls.append(c)
                    self._req.append(req)
                    self._size.append(n)
                    self.nbytes += n
                    return seq
                except OSError:     # flash full: make room from level reports, or refuse
                    pass
            if not self._drop_class("l", 1):
                self.refused += 1
                if c == "l":
                    return None
                raise OutboxFull()

    def _drop_class(self, c, limit):
        """Drop up to `limit` oldest messages of class c, never the oldest of all (it may
        be in flight); returns how many."""
        n = 0
        i = 1
        while i < len(self._seq) and n < limit:
            if self._cls[i] == c:
                self._drop(i)
                n += 1
            else:
                i += 1
        return n

    def _pop(self, i):
        if self._seq[i] == self._inflight:
            self._inflight = None
            self._wait = self.timeout_ms
        self.nbytes -= self._size[i]
        self._seq.pop(i)
        self._cls.pop(i)
        self._req.pop(i)
        self._size.pop(i)

    def _drop(self, i):
        n = self.dropped + 1
        # the drop and its count, one commit
        store.rename(self._name(i), "%s/d%d" % (self.path, n))
        if n > 1:
            store.remove("%s/d%d" % (self.path, n - 1))
        self.dropped = n
        self._pop(i)

    # ---- consent --------------------------------------------------------------
    def set_consent(self, level):
        """Change the gate; purge stored messages the new level no longer allows."""
        self.consent = level
        i = 0
        while i < len(self._seq):
            if self._req[i] > level:
                self._drop(i)
            else:
                i += 1

    # ---- send / ack -----------------------------------------------------------
    def next_due(self, now_ms):
        """(seq, payload bytes) to send now, or None. Marks it in flight at now_ms."""
        if not self._seq:
            return None
        if self._inflight is not None:
            if clock.ms_diff(now_ms, self._sent_ms) < self._wait:
                return None
            self._wait = min(self._wait * 2, self.max_timeout_ms)   # a retry: back off
            i = self._index(self._inflight)
        else:
            i = 0
            self._wait = self.timeout_ms
        seq = self._seq[i]
        data = store.read_bytes(self._name(i), self._size[i])
        if data is None:       # vanished under us (flash error): forget it, do not stall
            self._pop(i)
            return None
        self._inflight = seq
        self._sent_ms = now_ms
        return seq, data

    def ack(self, seq):
        """The bridge stored seq durably: delete it. Returns True if it was pending."""
        i = self._index(seq)
        if i < 0:
            return False
        store.remove(self._name(i))   # before the index: a cut leaves the file, not a hole
        self._pop(i)
        return True
