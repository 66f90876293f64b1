"""Bridge throughput and latency.

1. frames/s on one core for the whole uplink path of BridgeCore.handle_chunk:
   deframe + CRC, COSE_Mac0 verify, schema, dedupe, SQLite store with a durable COMMIT
   (WAL, synchronous=FULL, i.e. one fsync per frame), ack encode. Compared with what a
   115200-baud UART can carry for a typical level frame (115200 / 10 bits / frame bytes).
   Side by side: the same path with group commit (BridgeCore.handle_batch, frames from
   256 devices arriving together share one COMMIT, still synchronous=FULL), and the
   commits (fsyncs) each one issued.
   Every variant runs 3 rounds, interleaved, each on a fresh database: the best round, the
   median and the rate per CPU-second are printed (a shared VM slows some rounds).
2. end-to-end latency: UDP datagram sent -> line fsynced in the jsonl uplink, p50/p99,
   device stop-and-wait (next frame after the ack), as a real device sends.
"""
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from host_tools import registry as reg  # noqa: E402
from host_tools.bridge import Bridge, BridgeCore  # noqa: E402
from host_tools.links import UdpLink  # noqa: E402
from host_tools.store import Store  # noqa: E402
from host_tools.uplinks import JsonlUplink  # noqa: E402
from protocol import wire  # noqa: E402

KEY = bytes(range(32))
DEV = "printer-01"
LEVEL = {1: 48213, 2: 48, 3: 1250, 4: 926, 5: 71, 6: 9, 7: 87}  # a full level report


def frames(n, start=1):
    return [wire.pack(KEY, DEV, seq, LEVEL) for seq in range(start, start + n)]


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Rates:
    """frames/s of one variant over the rounds: wall clock and CPU time (process_time)."""

    def __init__(self):
        self.wall, self.cpu = [], []

    def time(self, n, fn):
        t, c = time.perf_counter(), time.process_time()
        fn()
        self.wall.append(n / (time.perf_counter() - t))
        self.cpu.append(n / max(1e-9, time.process_time() - c))

    def best(self):
        return max(self.wall)

    def text(self):
        return "%7.0f frames/s (median %6.0f; per CPU-second %6.0f)" % (
            max(self.wall), sorted(self.wall)[len(self.wall) // 2], max(self.cpu))


def bench_throughput(tmp, n=2000, rounds=3):
    """Each variant `rounds` times, interleaved, on a fresh database each round: the best
    round is the machine's figure (on a shared VM the others are slowed by other work),
    the median and the CPU-time rate show how much the machine's load moved it."""
    regpath = tmp / "registry.json"
    reg.add_device(regpath, DEV, KEY.hex())
    fs = frames(n)
    chunks = [f[1:-1] for f in fs]
    size = len(fs[0])
    full, dup, nosync, grouped = Rates(), Rates(), Rates(), Rates()
    n_group, batch = max(n, 8000), 256
    group_chunks = group_frames(regpath, n_group, batch)
    for r in range(rounds):
        store = Store(tmp / ("tp%d.sqlite" % r))
        core = BridgeCore(store, reg.Registry(regpath), ["jsonl:bench"])
        acks = []
        full.time(n, lambda: [core.handle_chunk(c, acks.append) for c in chunks])
        commits_one = store.commits
        assert core.count["stored"] == n and len(acks) == n
        # the same frames again: duplicates (verify + lookup + re-ack, commit of the counter only)
        dup.time(n, lambda: [core.handle_chunk(c, acks.append) for c in chunks])
        store.close()
        # without durability (synchronous=OFF): how much of the cost is the fsync
        store = Store(tmp / ("nosync%d.sqlite" % r))
        store.db.execute("PRAGMA synchronous=OFF")
        core = BridgeCore(store, reg.Registry(regpath), ["jsonl:bench"])
        nosync.time(n, lambda: [core.handle_chunk(c, acks.append) for c in chunks])
        store.close()
        commits_group = bench_group_commit(tmp / ("group%d.sqlite" % r), regpath, group_chunks, batch, grouped)
    line = 115200 / 10 / 56  # the reference 56-byte level frame: 205.7 frames/s
    print("level frame here: %d bytes on the wire (115200 baud: %.0f frames/s); reference 56-byte frame: "
          "%.0f frames/s; best of %d rounds" % (size, 115200 / 10 / size, line, rounds))
    print("bridge, one core, store + durable commit + ack: %s = %.1fx line rate  (%d commits for %d frames)"
          % (full.text(), full.best() / line, commits_one, n))
    print("bridge, one core, group commit, %3d together:    %s = %.1fx line rate  (%d commits for %d frames, "
          "synchronous=FULL)  -> %.1fx the one-commit-per-frame path"
          % (batch, grouped.text(), grouped.best() / line, commits_group, n_group, grouped.best() / full.best()))
    print("bridge, one core, duplicates (re-ack):          %s = %.1fx line rate" % (dup.text(), dup.best() / line))
    print("bridge, one core, synchronous=OFF (no fsync):    %s (fsync share %.0f%%)"
          % (nosync.text(), 100 * (1 - full.best() / nosync.best())))


def group_frames(regpath, n, batch):
    """Frames of `batch` devices round-robin (registered here), as many datagrams from a
    fleet arrive."""
    devs = ["gc-%03d" % i for i in range(batch)]
    keys = {d: bytes([i % 256]) * 32 for i, d in enumerate(devs)}
    for d in devs:
        reg.add_device(regpath, d, keys[d].hex())
    return [wire.pack(keys[devs[i % batch]], devs[i % batch], 1 + i // batch, LEVEL)[1:-1] for i in range(n)]


def bench_group_commit(path, regpath, chunks, batch, rates):
    """The frames handed to handle_batch `batch` at a time, as the UDP link hands over what
    arrived during the previous commit; returns the commits issued."""
    n = len(chunks)
    store = Store(path)
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    core = BridgeCore(store, reg.Registry(regpath), ["jsonl:bench"])
    acks = []
    rates.time(n, lambda: [core.handle_batch([(c, acks.append, "udp:bench") for c in chunks[k:k + batch]])
                           for k in range(0, n, batch)])
    assert core.count["stored"] == n and len(acks) == n
    commits = store.commits
    store.close()
    return commits


class TimedJsonl(JsonlUplink):
    """Records when each record became durable in the jsonl file."""

    def __init__(self, path):
        super().__init__(path)
        self.batch, self.done = [], {}

    def send(self, rec):
        super().send(rec)
        self.batch.append(rec.seq)

    def flush(self):
        super().flush()
        now = time.perf_counter()
        for s in self.batch:
            self.done[s] = now
        self.batch = []


def bench_latency(tmp, n=300):
    regpath = tmp / "registry.json"
    up = TimedJsonl(str(tmp / "up.jsonl"))
    b = Bridge(tmp / "lat.sqlite", reg.Registry(regpath), [up], [UdpLink("udp://127.0.0.1:0")],
               log=lambda *a, **k: None).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    sent, ack_rtt = {}, []
    try:
        for seq, f in enumerate(frames(n), 1):
            sent[seq] = time.perf_counter()
            sock.sendto(f, b.links[0].address)
            sock.recvfrom(512)
            ack_rtt.append(time.perf_counter() - sent[seq])
            time.sleep(0.002)
        end = time.monotonic() + 10
        while len(up.done) < n and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        b.stop()
    lat = [up.done[s] - sent[s] for s in sent if s in up.done]
    print("frame -> ack (UDP loopback, stored+committed):  p50 %.2f ms  p99 %.2f ms"
          % (1000 * percentile(ack_rtt, 50), 1000 * percentile(ack_rtt, 99)))
    print("frame -> jsonl uplink (fsynced), %d frames:     p50 %.2f ms  p99 %.2f ms"
          % (len(lat), 1000 * percentile(lat, 50), 1000 * percentile(lat, 99)))


def main():
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        tmp = Path(d)
        print("python %s, SQLite in %s" % (sys.version.split()[0], tmp))
        bench_throughput(tmp)
        bench_latency(tmp)


if __name__ == "__main__":
    main()
