# The memory run of the complete agent, shared by tests/device/mpt_agent_memory.py and
# tests/benchmarks/bench_memory.py (MicroPython).
#
# setup(root) writes a board's flash: board.json (boards/virtual.json), provision.json and
# sim.json (manual clock, no control file, refill 2 days after empty). boot(root) boots it
# through firmware/main.py's own boot(), with Loop as the link: the bridge, in-process,
# built from device modules only (no host-side decoding in the device's heap), verifying
# each frame's MAC and acking its seq. run(agent, n) then does n cycles (read, filter,
# estimate, decide, encode, store, send, ack) of 600 simulated seconds each.
import gc
import json
import time

from protocol import cbor, cose, framing

KEY = bytes(range(32))
ACK = 16


def setup(root, board_path="boards/virtual.json"):
    with open(board_path) as f:
        b = f.read()
    with open(root + "board.json", "w") as f:
        f.write(b)
    with open(root + "provision.json", "w") as f:
        json.dump({"device_id": "m1", "key": "".join("%02x" % x for x in KEY), "consent": 4}, f)
    with open(root + "sim.json", "w") as f:
        json.dump({"speed": 0, "ctl": None, "refill_after_days": 2}, f)


class Loop:
    def __init__(self):
        self.inbox = []
        self.dseq = 0
        self.ack = {0: ACK, 1: 0}
        self.n = 0

    def send(self, f):
        kid, seq, raw = cose.verify(framing.decode_frame(f.strip(b"\0")), lambda k: KEY)
        self.n += 1
        self.dseq += 1
        self.ack[1] = seq
        out = cose.encode(KEY, b"b", self.dseq, cbor.dumps(self.ack), cose.AAD_DOWN)
        self.inbox.append(framing.encode_frame(out).strip(b"\0"))
        return True

    def poll(self):
        o = self.inbox
        self.inbox = []
        return o


def boot(root):
    from firmware import main
    tr = Loop()
    a = main.boot(root, transport=tr, verbose=False)
    gc.collect()
    return a, tr


def run(a, n):
    """n cycles -> (warm, end, peak, us per cycle): heap in use after gc.collect() after
    min(1000, n // 2) cycles and at the end, and the peak of gc.mem_alloc() at the end of
    a cycle that started right after gc.collect() (every 10th), garbage included."""
    from firmware import hal
    w = hal.world()
    peak = 0
    warm = gc.mem_alloc()
    t0 = time.ticks_us()
    for i in range(n):
        w.advance(600)
        probe = i % 10 == 0
        if probe:
            gc.collect()
        a.cycle()
        a.service()
        if probe:
            m = gc.mem_alloc()
            if m > peak:
                peak = m
        if i == min(1000, n // 2):
            gc.collect()
            warm = gc.mem_alloc()
    dt = time.ticks_diff(time.ticks_us(), t0)
    gc.collect()
    return warm, gc.mem_alloc(), peak, dt // max(n, 1)
