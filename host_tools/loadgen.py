"""Load generator: N simulated devices speaking the real protocol to one bridge over UDP.

    python -m host_tools.loadgen --devices 1000 --seconds 20         # realistic rate, zero loss?
    python -m host_tools.loadgen --devices 1000 --ramp                # highest zero-loss rate

The bridge runs as a separate process (`python -m host_tools.cli bridge --listen
udp://127.0.0.1:PORT --uplink jsonl:PATH --registry REG --db DB`), so the figures are
those of the real program, its SQLite commit-before-ack and its forwarder included.

Every simulated device has its own key (written to a temporary registry, mode 0600), its
own UDP socket (its own source address, as a board on Wi-Fi has), its own uplink
sequence number, and behaves like firmware/outbox.py: messages take the next seq when
they are created and wait in a bounded outbox (32, as the board default); one message is
in flight (stop-and-wait); an ack is verified (COSE_Mac0, downlink AAD, downlink seq
above the last one) and deletes every message up to its seq; on timeout the same frame is
resent, the timeout doubling up to a cap. Frames are built with protocol.wire.pack (before
a run starts: Fleet.prepare, so the encoder does not slow the generator down). The
mix is mostly level reports, with some usage reports and events (low_soon, order
requests with idempotency keys), and one hello per device at its first report.

Measured per run (or per ramp step):
  loss         messages created but never acked (or dropped by a full outbox)
  dups         (device, seq) lines appearing more than once in the jsonl uplink
  send->ack    first transmission to the verified ack
  send->uplink first transmission to the line appearing in the jsonl file (tailed)
  RSS          the bridge's VmRSS from /proc/PID/status (peak over the run)
  serial ratio sustained rate / the frames per second of one 115200-baud line
               (115200 / 10 bits per byte / mean frame length)

Safety: traffic goes to 127.0.0.1 only (the bridge listens there, devices bind there),
every loop is bounded in count and in time, and the bridge is stopped with SIGTERM (then
SIGKILL after a grace period) when the run ends, whatever happens.
"""
from __future__ import annotations

import argparse
import collections
import heapq
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cbor2

from host_tools import codec, registry as reg
from protocol import cose, messages as M, wire

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
OUTBOX_MAX = 32          # firmware default (board "outbox": {"max_count": 32})
MAX_TIMEOUT = 8.0        # cap of the doubling resend timeout (the firmware caps at 120 s)
LINE_BPS = 115200


def pct(values, p):
    """The p-th percentile (nearest rank) of a list, or None."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_s(pid):
    """User + system CPU seconds of a process so far (/proc/PID/stat), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_cpu():
    """(busy, total) CPU jiffies of the whole machine, all cores (/proc/stat), or None: what
    else ran during a phase (other processes on the same cores) shows in its figures."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)   # idle + iowait
        return sum(v[:8]) - idle, sum(v[:8])
    except (OSError, ValueError, IndexError):
        return None


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------- bridge
class BridgeProcess:
    """`consumables bridge` on udp://127.0.0.1:PORT in a subprocess, with a jsonl uplink."""

    def __init__(self, workdir, registry, port=None, extra=()):
        self.dir = Path(workdir)
        self.port = port or free_udp_port()
        self.registry = Path(registry)
        self.db = self.dir / "bridge.sqlite"
        self.uplink = self.dir / "uplink.jsonl"
        self.logfile = self.dir / "bridge.log"
        self.extra = list(extra)
        self.proc = None
        self.returncode = None

    @property
    def addr(self):
        return (HOST, self.port)

    def start(self, timeout=15.0):
        cmd = [sys.executable, "-m", "host_tools.cli", "bridge", "--listen", "udp://%s:%d" % self.addr,
               "--uplink", "jsonl:%s" % self.uplink, "--registry", str(self.registry), "--db", str(self.db),
               "--print-every", "0"] + self.extra
        self._log = open(self.logfile, "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        status = Path(str(self.db) + ".status.json")
        end = time.monotonic() + timeout
        while time.monotonic() < end:  # the status file is written once the links are open
            if self.proc.poll() is not None:
                raise RuntimeError("bridge exited with %s: %s" % (self.proc.returncode, self.log_text()[-500:]))
            if status.exists():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("bridge did not start within %.0f s" % timeout)

    def rss_kb(self):
        return rss_kb(self.proc.pid) if self.proc and self.proc.poll() is None else None

    def cpu_s(self):
        return cpu_s(self.proc.pid) if self.proc and self.proc.poll() is None else None

    def stop(self, grace=10.0):
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.returncode = self.proc.returncode
        self.proc = None
        self._log.close()
        return self.returncode

    def log_text(self):
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def final_counters(self):
        for line in reversed(self.log_text().splitlines()):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("event") == "bridge_stopped":
                return {k: v for k, v in doc.items() if k not in ("ts", "event")}
        return {}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------- devices
class Msg:
    __slots__ = ("dev", "seq", "frame", "kind", "created", "first_sent", "acked", "sends")

    def __init__(self, dev, seq, frame, kind, created):
        self.dev, self.seq, self.frame, self.kind, self.created = dev, seq, frame, kind, created
        self.first_sent = self.acked = None
        self.sends = 0


class Device:
    """One simulated board: key, seq counter, bounded outbox, stop-and-wait."""

    def __init__(self, idx, rng, ack_timeout):
        self.idx = idx
        self.id = "lg%05d" % idx
        self.kid = self.id.encode()
        self.key = bytes(rng.getrandbits(8) for _ in range(32))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.seq = 0               # seq of the last message created
        self.built = 0             # seq of the last frame prepared
        self.ready = collections.deque()   # prepared (seq, kind, frame), oldest first
        self.dseq = 0              # highest downlink seq accepted (replay check, as firmware)
        self.outbox = []           # Msg, oldest first; outbox[0] is in flight once sent
        self.inflight = False
        self.timeout0 = self.timeout = ack_timeout
        self.remaining = rng.randint(300, 1000)
        self.consumed = 0
        self.episode = 1
        self.said_hello = False
        self.presses = 0
        self.bad_acks = 0

    def payload(self, rng):
        if not self.said_hello:  # a board says hello once per boot
            self.said_hello = True
            return "hello", {0: M.HELLO, 1: 1, 2: "0.3.0", 3: "loadgen", 4: "TONER-1", 6: 1000, 7: 0,
                             9: M.CONSENT_FULL, 10: 1}
        self.remaining = max(0, self.remaining - rng.randint(0, 5))
        r = rng.random()
        if r < 0.85:
            p = {1: self.remaining, 2: self.remaining * 100 // 1000, 3: rng.randint(5, 30), 6: rng.randint(5, 10)}
            if r < 0.6:
                p[4] = rng.randint(24, 2000)
                p[5] = rng.randint(1, 100)
            return "level", p
        if r < 0.93:
            self.consumed += rng.randint(100, 5000)
            return "usage", {0: M.USAGE, 1: self.consumed, 2: self.episode}
        if r < 0.97:
            return "event", {0: M.EVENT, 1: M.EV_LOW_SOON, 2: self.episode, 4: rng.randint(24, 200)}
        self.presses += 1
        return "event", {0: M.EVENT, 1: M.EV_ORDER_REQUEST, 2: self.episode,
                         3: "%s-b%d" % (self.id, self.presses), 5: M.BY_BUTTON}

    def prepare(self, n, rng):
        """Build the next n frames now (seq, kind, frame), for create() to take in order:
        wire.pack (the devices' own pure-Python encoder, ~75 us a frame) then runs before
        a run's clock starts, not between its sends (it was the generator's biggest cost)."""
        for _ in range(n):
            self.built += 1
            kind, p = self.payload(rng)
            self.ready.append((self.built, kind, wire.pack(self.key, self.kid, self.built, p)))

    def create(self, now, rng):
        """A new message enters the outbox (takes the next seq); None if the outbox is full."""
        if len(self.outbox) >= OUTBOX_MAX:
            return None
        if not self.ready:
            self.prepare(1, rng)
        self.seq, kind, frame = self.ready.popleft()
        m = Msg(self.id, self.seq, frame, kind, now)
        self.outbox.append(m)
        return m

    def send_head(self, addr, now):
        m = self.outbox[0]
        try:
            self.sock.sendto(m.frame, addr)
        except OSError:  # ENOBUFS and the like: the timeout resends it
            pass
        m.sends += 1
        if m.first_sent is None:
            m.first_sent = now
        self.inflight = True
        return m

    def verify_ack(self, data):
        """The verified ack's seq, or None (bad frame or MAC, wrong AAD or kid, not an ack,
        a downlink seq not above the last one accepted). The bridge answers a boot's hello
        with the wall clock too: a fresh, verified `time` is taken and is None, not bad."""
        try:
            # the host codec's fast paths (checked against the protocol's reference code
            # in tests/host/test_codec_*.py): the generator must not be what limits the run
            body = codec.decode_frame(wire.unframe(data))
            kid, dseq, prot, payload, tag = codec.parse_envelope(body)
            if kid != self.kid or codec.verify_mac([self.key], prot, payload, tag, cose.AAD_DOWN) is None:
                raise ValueError("bad MAC")
            p = cbor2.loads(payload)
            t = codec.validate(p, (M.ACK, M.TIME))
            if dseq <= self.dseq:
                raise ValueError("not a fresh downlink")
        except (ValueError, TypeError, KeyError, IndexError):
            self.bad_acks += 1
            return None
        self.dseq = dseq
        return p[1] if t == M.ACK else None


class UplinkTail:
    """Follows the jsonl uplink file: (device, seq) -> first time seen; counts duplicates."""

    def __init__(self, path):
        self.path = Path(path)
        self.pos = 0
        self.buf = b""
        self.seen = {}
        self.dups = 0
        self.lines = 0

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read(8 << 20)
        except FileNotFoundError:
            return
        if not data:
            return
        now = time.monotonic()
        self.pos += len(data)
        lines = (self.buf + data).split(b"\n")
        self.buf = lines.pop()
        for line in lines:
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                k = (doc["device"], doc["seq"])
            except (ValueError, KeyError, TypeError):
                continue
            self.lines += 1
            if k in self.seen:
                self.dups += 1
            else:
                self.seen[k] = now


class Fleet:
    """Every simulated device, driven by one epoll loop that is bounded in time."""

    def __init__(self, n, addr, seed=1, ack_timeout=1.0, uplink=None):
        self.rng = random.Random(seed)
        self.addr = addr
        self.devices = []
        self.sel = selectors.DefaultSelector()
        try:
            for i in range(n):
                d = Device(i, self.rng, ack_timeout)
                while d.sock.getsockname()[1] == addr[1]:  # 10,000 sockets: one may take the bridge's port
                    d.sock.close()
                    d.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    d.sock.bind((HOST, 0))
                    d.sock.setblocking(False)
                self.devices.append(d)
                self.sel.register(d.sock, selectors.EVENT_READ, d)
        except BaseException:
            self.close()
            raise
        self.msgs = []           # every Msg created, for the figures
        self.overflow = 0
        self.resends = 0
        self.tail = UplinkTail(uplink) if uplink else None
        self.timeouts = []       # heap of (deadline, device index, seq)

    def close(self):
        for d in self.devices:
            try:
                self.sel.unregister(d.sock)
            except (KeyError, ValueError):
                pass
            d.sock.close()
        self.sel.close()

    def write_registry(self, path):
        reg.save(path, {"devices": {d.id: {"key": d.key.hex(), "board": "loadgen"} for d in self.devices}})

    def _kick(self, d, now):
        if d.outbox and not d.inflight:
            m = d.send_head(self.addr, now)
            heapq.heappush(self.timeouts, (now + d.timeout, d.idx, m.seq))

    def _on_ack(self, d, seq, now):
        if not d.inflight:
            return
        done = 0
        while d.outbox and d.outbox[0].seq <= seq:  # an ack covers everything up to its seq
            d.outbox.pop(0).acked = now
            done += 1
        if done:
            d.inflight = False
            d.timeout = d.timeout0
            self._kick(d, now)

    def pending(self):
        return sum(len(d.outbox) for d in self.devices)

    def prepare(self, schedule):
        """Build ahead the frames the messages in `schedule` will carry (Device.prepare)."""
        counts = collections.Counter(i for _, i in schedule)
        for i, n in counts.items():
            d = self.devices[i]
            d.prepare(max(0, n - len(d.ready)), self.rng)

    def run(self, schedule, until, drain_until, on_tick=None):
        """Create messages at the times in `schedule` (heap of (t, device index)) before
        `until`, then keep delivering until all are acked or `drain_until` (hard stop)."""
        self.prepare(schedule)
        next_tail = next_tick = 0.0
        for _ in range(100_000_000):  # bounded; the time limit below ends it first
            now = time.monotonic()
            if now >= drain_until:
                break
            while schedule and schedule[0][0] <= now:
                _, i = heapq.heappop(schedule)
                d = self.devices[i]
                m = d.create(now, self.rng)
                if m is None:
                    self.overflow += 1
                else:
                    self.msgs.append(m)
                    self._kick(d, now)
            if not schedule and now >= until and not self.pending():
                break
            while self.timeouts and self.timeouts[0][0] <= now:
                _, i, seq = heapq.heappop(self.timeouts)
                d = self.devices[i]
                if d.inflight and d.outbox and d.outbox[0].seq == seq:
                    d.timeout = min(d.timeout * 2, MAX_TIMEOUT)   # back off, as the firmware does
                    self.resends += 1
                    d.inflight = False
                    self._kick(d, now)
            wait = 0.005
            if schedule:
                wait = min(wait, max(0.0, schedule[0][0] - now))
            for key, _ in self.sel.select(wait):
                d = key.data
                for _ in range(64):  # bounded drain of one socket
                    try:
                        data = d.sock.recv(2048)
                    except OSError:  # BlockingIOError: nothing more
                        break
                    seq = d.verify_ack(data)
                    if seq is not None:
                        self._on_ack(d, seq, time.monotonic())
            if now >= next_tail and self.tail:
                self.tail.poll()
                next_tail = now + 0.01
            if on_tick and now >= next_tick:
                on_tick()
                next_tick = now + 0.25

    def wait_uplink(self, msgs, timeout):
        """Bounded wait until every acked message of `msgs` is in the uplink file."""
        if not self.tail:
            return
        want = [(m.dev, m.seq) for m in msgs if m.acked is not None]
        end = time.monotonic() + timeout
        while True:
            self.tail.poll()
            if all(k in self.tail.seen for k in want) or time.monotonic() >= end:
                return
            time.sleep(0.02)


def _ms(v):
    return None if v is None else round(v * 1000.0, 1)


def figures(fleet, msgs, seconds):
    """Figures for a set of messages (those created in one run or one ramp step)."""
    acked = [m for m in msgs if m.acked is not None]
    s2a = [m.acked - m.first_sent for m in acked]
    seen = fleet.tail.seen if fleet.tail else {}
    s2u, missing = [], 0
    for m in acked:
        t = seen.get((m.dev, m.seq))
        if t is None:
            missing += 1
        else:
            s2u.append(max(0.0, t - m.first_sent))
    mean_len = sum(len(m.frame) for m in msgs) / len(msgs) if msgs else 0.0
    kinds = {}
    for m in msgs:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    rate = len(acked) / seconds if seconds else 0.0
    line = LINE_BPS / 10.0 / mean_len if mean_len else 0.0
    return {
        "created": len(msgs), "acked": len(acked), "lost": len(msgs) - len(acked),
        "uplink_missing": missing, "kinds": kinds,
        "retransmissions": sum(m.sends - 1 for m in msgs if m.sends),
        "rate_msg_s": round(rate, 1),
        "send_ack_p50_ms": _ms(pct(s2a, 50)), "send_ack_p99_ms": _ms(pct(s2a, 99)),
        "send_ack_max_ms": _ms(max(s2a) if s2a else None),
        "send_uplink_p50_ms": _ms(pct(s2u, 50)), "send_uplink_p99_ms": _ms(pct(s2u, 99)),
        "mean_frame_bytes": round(mean_len, 1), "serial_line_frames_s": round(line, 1),
        "x_serial_line": round(rate / line, 2) if line else None,
    }


class Run:
    """A fleet and its bridge process; owns a temporary directory unless given one."""

    def __init__(self, devices, workdir=None, seed=1, ack_timeout=1.0, bridge_args=()):
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="loadgen-")
            workdir = self._tmp.name
        self.dir = Path(workdir)
        self.registry = self.dir / "registry.json"
        self.bridge = BridgeProcess(self.dir, self.registry, extra=bridge_args)
        self.fleet = Fleet(devices, self.bridge.addr, seed, ack_timeout, self.bridge.uplink)
        self.fleet.write_registry(self.registry)
        self.rss_peak = 0
        self.rss_last = self.rss_start = None
        self.bridge_counters = {}

    def sample_rss(self):
        v = self.bridge.rss_kb()
        if v:
            self.rss_last = v
            self.rss_peak = max(self.rss_peak, v)

    def __enter__(self):
        try:
            self.bridge.start()
        except BaseException:
            self.fleet.close()
            raise
        self.sample_rss()
        self.rss_start = self.rss_last
        return self

    def __exit__(self, *exc):
        try:
            self.bridge.stop()
            self.bridge_counters = self.bridge.final_counters()
        finally:
            self.fleet.close()
            if self._tmp:
                self._tmp.cleanup()

    def phase(self, rate, seconds, drain=10.0, jitter=0.1):
        """Offer `rate` messages/s in total (each device at rate/N, random phase, +-jitter)
        for `seconds`, then drain (bounded). Returns the figures of this phase's messages."""
        f = self.fleet
        n = len(f.devices)
        period = n / float(rate)
        t0 = time.monotonic() + 0.05
        sched = []
        cap = int(rate * seconds * 1.2) + n + 10   # bounded: about the offered count
        for i in range(n):
            t = t0 + f.rng.random() * period
            while t < t0 + seconds and len(sched) < cap:
                sched.append((t, i))
                t += period * (1.0 + f.rng.uniform(-jitter, jitter))
        f.prepare(sched)   # the frames are built before the clock starts: shift the schedule by that time
        late = max(0.0, time.monotonic() + 0.05 - t0)
        sched = [(t + late, i) for t, i in sched]
        t0 += late
        heapq.heapify(sched)
        first, over0, res0 = len(f.msgs), f.overflow, f.resends
        cpu0 = time.process_time()
        mach0 = machine_cpu()
        bcpu0 = self.bridge.cpu_s() if hasattr(self.bridge, "cpu_s") else None
        f.run(sched, t0 + seconds, t0 + seconds + drain, on_tick=self.sample_rss)
        cpu = time.process_time() - cpu0
        msgs = f.msgs[first:]
        f.wait_uplink(msgs, min(10.0, drain + 2.0))
        st = figures(f, msgs, seconds)
        st.update(offered_msg_s=rate, devices=n, seconds=seconds, overflow=f.overflow - over0,
                  resends=f.resends - res0, loadgen_cpu_s=round(cpu, 2))
        st["lost"] += st["overflow"]
        # the generator's own cost: its CPU per message created, and the rate one core
        # of it could offer at most (if the bridge answered for free)
        st["loadgen_us_per_msg"] = round(1e6 * cpu / max(1, st["created"]))
        st["loadgen_ceiling_msg_s"] = round(st["created"] / cpu) if cpu > 0 else None
        mach1 = machine_cpu()
        st["machine_busy_pct"] = (round(100.0 * (mach1[0] - mach0[0]) / max(1, mach1[1] - mach0[1]), 1)
                                  if mach0 and mach1 else None)
        st["machine_cores"] = os.cpu_count()
        bcpu1 = self.bridge.cpu_s() if bcpu0 is not None else None
        st["bridge_cpu_s"] = None if bcpu1 is None else round(bcpu1 - bcpu0, 2)
        st["bridge_cpu_us_per_msg"] = (round(1e6 * (bcpu1 - bcpu0) / max(1, st["acked"]))
                                       if bcpu1 is not None else None)
        self.sample_rss()
        st["bridge_rss_kb"], st["bridge_rss_peak_kb"] = self.rss_last, self.rss_peak
        st["uplink_dups"] = f.tail.dups if f.tail else None
        st["bad_acks"] = sum(d.bad_acks for d in f.devices)
        return st


# ---------------------------------------------------------------------------- modes
def steady(devices=1000, seconds=20.0, interval=10.0, drain=10.0, seed=1, ack_timeout=1.0, workdir=None,
           bridge_args=()):
    """Mode (a): every device reports every `interval` s (random phase) for `seconds`."""
    with Run(devices, workdir, seed, ack_timeout, bridge_args) as r:
        st = r.phase(devices / float(interval), seconds, drain)
    st["mode"] = "steady"
    st["interval_s"] = interval
    st["bridge_counters"] = r.bridge_counters
    st["bridge_rss_start_kb"] = r.rss_start
    return st


def ramp(devices=1000, start=100.0, factor=1.3, step_s=4.0, budget_s=60.0, drain=3.0, max_p99=1.0,
         seed=1, ack_timeout=1.0, workdir=None, log=None, bridge_args=()):
    """Mode (b): raise the offered rate step by step until a step loses a message, its
    send->ack p99 exceeds `max_p99` s, or the time budget would be exceeded."""
    log = log or (lambda st: None)
    steps, best, stop = [], None, "budget"
    t_end = time.monotonic() + budget_s
    with Run(devices, workdir, seed, ack_timeout, bridge_args) as r:
        rate = start
        for _ in range(100):  # bounded
            if time.monotonic() + step_s + drain > t_end:
                break
            st = r.phase(rate, step_s, drain)
            steps.append(st)
            log(st)
            p99 = st["send_ack_p99_ms"]
            if st["lost"] or st["uplink_missing"] or (p99 is not None and p99 > max_p99 * 1000):
                stop = "loss" if (st["lost"] or st["uplink_missing"]) else "p99>%.0fms" % (max_p99 * 1000)
                break
            best = st
            rate = round(rate * factor)
    return {"mode": "ramp", "devices": devices, "steps": steps, "sustained": best, "stopped_by": stop,
            "bridge_counters": r.bridge_counters, "bridge_rss_start_kb": r.rss_start,
            "bridge_rss_peak_kb": r.rss_peak}


def describe(st) -> str:
    """One block of text for a phase's figures."""
    return ("%(devices)d devices, offered %(offered_msg_s).0f msg/s for %(seconds).0fs: "
            "created %(created)d, acked %(acked)d, lost %(lost)d, uplink missing %(uplink_missing)d, "
            "uplink dups %(uplink_dups)s, retransmissions %(retransmissions)d\n"
            "  sustained %(rate_msg_s).1f msg/s; send->ack p50 %(send_ack_p50_ms)s ms p99 %(send_ack_p99_ms)s ms "
            "(max %(send_ack_max_ms)s); send->uplink p50 %(send_uplink_p50_ms)s ms p99 %(send_uplink_p99_ms)s ms\n"
            "  bridge RSS %(bridge_rss_kb)s kB (peak %(bridge_rss_peak_kb)s kB); mean frame %(mean_frame_bytes)s B "
            "-> one 115200-baud line = %(serial_line_frames_s)s frames/s, this = x%(x_serial_line)s; "
            "loadgen CPU %(loadgen_cpu_s)ss (%(loadgen_us_per_msg)s us/msg: its own ceiling ~%(loadgen_ceiling_msg_s)s "
            "msg/s on one core), bridge CPU %(bridge_cpu_s)ss (%(bridge_cpu_us_per_msg)s us per acked msg); "
            "machine %(machine_busy_pct)s%% busy of %(machine_cores)s cores (all processes)"
            % dict({"bridge_cpu_s": None, "bridge_cpu_us_per_msg": None, "loadgen_us_per_msg": None,
                    "loadgen_ceiling_msg_s": None, "machine_busy_pct": None, "machine_cores": None}, **st))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m host_tools.loadgen",
                                description="Simulated devices on 127.0.0.1 against a bridge process.")
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=20.0, help="steady mode: how long devices report")
    p.add_argument("--interval", type=float, default=10.0, help="steady mode: seconds between a device's reports")
    p.add_argument("--ramp", action="store_true", help="find the highest zero-loss rate (<= --budget s)")
    p.add_argument("--start", type=float, default=100.0, help="ramp: first offered rate (msg/s)")
    p.add_argument("--factor", type=float, default=1.3, help="ramp: rate multiplier per step")
    p.add_argument("--step", type=float, default=4.0, help="ramp: seconds per step")
    p.add_argument("--budget", type=float, default=60.0, help="ramp: total time bound (s)")
    p.add_argument("--ack-timeout", type=float, default=1.0, help="first resend timeout (s), doubling")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--group-commit", type=int, default=None, metavar="N",
                   help="the bridge's --group-commit (1: one COMMIT per frame, the path before group commit)")
    a = p.parse_args(argv)
    if not 1 <= a.devices <= 10000:
        p.error("--devices must be 1..10000")
    if a.group_commit is not None and not 1 <= a.group_commit <= 10000:
        p.error("--group-commit must be 1..10000")
    bargs = [] if a.group_commit is None else ["--group-commit", str(a.group_commit)]
    if not 0 < a.seconds <= 600 or not 0 < a.budget <= 600 or not 0 < a.step <= a.budget \
            or a.interval <= 0 or a.factor <= 1 or a.start <= 0 or a.ack_timeout <= 0:
        p.error("times must be positive and bounded (<= 600 s), --factor > 1")
    if a.ramp:
        out = ramp(a.devices, a.start, a.factor, a.step, a.budget, seed=a.seed, ack_timeout=a.ack_timeout,
                   bridge_args=bargs, log=None if a.json else (lambda st: print(describe(st), flush=True)))
        if a.json:
            print(json.dumps(out, indent=1))
        else:
            best = out["sustained"]
            print("ramp stopped by: %s" % out["stopped_by"])
            print("highest zero-loss rate: %s" % ("none" if best is None else
                                                   "%.0f msg/s offered, %.1f msg/s acked" %
                                                   (best["offered_msg_s"], best["rate_msg_s"])))
            print("bridge counters: %s" % json.dumps(out["bridge_counters"]))
        return 0
    st = steady(a.devices, a.seconds, a.interval, seed=a.seed, ack_timeout=a.ack_timeout, bridge_args=bargs)
    if a.json:
        print(json.dumps(st, indent=1))
    else:
        print(describe(st))
        print("bridge counters: %s" % json.dumps(st["bridge_counters"]))
    return 0 if st["lost"] == 0 and st["uplink_missing"] == 0 and not st["uplink_dups"] else 1


if __name__ == "__main__":
    sys.exit(main())
