"""Bridge throughput and latency.

1. frames/s on one core for the whole uplink path of BridgeCore.handle_chunk:
   deframe + CRC, COSE_Mac0 verify, schema, dedupe, SQLite store with a durable COMMIT
   (WAL, synchronous=FULL, i.e. one fsync per frame), ack encode. Compared with what a
   115200-baud UART can carry for a typical level frame (115200 / 10 bits / frame bytes).
   Side by side: the same path with group commit (BridgeCore.handle_batch, frames from
   256 devices arriving together share one COMMIT, still synchronous=FULL), and the
   commits (fsyncs) each one issued.
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


def bench_throughput(tmp, n=2000):
    regpath = tmp / "registry.json"
    reg.add_device(regpath, DEV, KEY.hex())
    fs = frames(n)
    chunks = [f[1:-1] for f in fs]
    size = len(fs[0])
    store = Store(tmp / "tp.sqlite")
    core = BridgeCore(store, reg.Registry(regpath), ["jsonl:bench"])
    acks = []
    t = time.perf_counter()
    for c in chunks:
        core.handle_chunk(c, acks.append)
    full = n / (time.perf_counter() - t)
    commits_one = store.commits
    assert core.count["stored"] == n and len(acks) == n
    # the same frames again: duplicates (verify + lookup + re-ack, commit of the counter only)
    t = time.perf_counter()
    for c in chunks:
        core.handle_chunk(c, acks.append)
    dup = n / (time.perf_counter() - t)
    store.close()
    # without durability (synchronous=OFF): how much of the cost is the fsync
    store = Store(tmp / "nosync.sqlite")
    store.db.execute("PRAGMA synchronous=OFF")
    core = BridgeCore(store, reg.Registry(regpath), ["jsonl:bench"])
    t = time.perf_counter()
    for c in chunks:
        core.handle_chunk(c, acks.append)
    nosync = n / (time.perf_counter() - t)
    store.close()
    grouped, commits_group, batch = bench_group_commit(tmp, regpath, max(n, 8000))
    line = 115200 / 10 / 56  # the reference 56-byte level frame: 205.7 frames/s
    print("level frame here: %d bytes on the wire (115200 baud: %.0f frames/s); reference 56-byte frame: "
          "%.0f frames/s" % (size, 115200 / 10 / size, line))
    print("bridge, one core, store + durable commit + ack: %7.0f frames/s  = %.1fx line rate  (%d commits for %d "
          "frames)" % (full, full / line, commits_one, n))
    print("bridge, one core, group commit, %3d together:    %7.0f frames/s  = %.1fx line rate  (%d commits for %d "
          "frames, synchronous=FULL)  -> %.1fx the one-commit-per-frame path"
          % (batch, grouped, grouped / line, commits_group, max(n, 8000), grouped / full))
    print("bridge, one core, duplicates (re-ack):          %7.0f frames/s  = %.1fx line rate" % (dup, dup / line))
    print("bridge, one core, synchronous=OFF (no fsync):    %7.0f frames/s  (fsync share %.0f%%)"
          % (nosync, 100 * (1 - full / nosync)))


def bench_group_commit(tmp, regpath, n, batch=256):
    """Frames of `batch` devices round-robin, handed to handle_batch `batch` at a time,
    as the UDP link hands over what arrived during the previous commit."""
    devs = ["gc-%03d" % i for i in range(batch)]
    keys = {d: bytes([i % 256]) * 32 for i, d in enumerate(devs)}
    for d in devs:
        reg.add_device(regpath, d, keys[d].hex())
    chunks = [wire.pack(keys[devs[i % batch]], devs[i % batch], 1 + i // batch, LEVEL)[1:-1] for i in range(n)]
    store = Store(tmp / "group.sqlite")
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    core = BridgeCore(store, reg.Registry(regpath), ["jsonl:bench"])
    acks = []
    t = time.perf_counter()
    for k in range(0, n, batch):
        core.handle_batch([(c, acks.append, "udp:bench") for c in chunks[k:k + batch]])
    rate = n / (time.perf_counter() - t)
    assert core.count["stored"] == n and len(acks) == n
    commits = store.commits
    store.close()
    return rate, commits, batch


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
