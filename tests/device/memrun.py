# The memory run of the complete agent, shared by tests/device/mpt_agent_memory.py and
# tests/benchmarks/bench_memory.py (MicroPython).
#
# boot(root) boots a board's flash (board.json = boards/virtual.json, provision.json with
# KEY, sim.json: manual clock, no control file, refill 2 days after empty; written by
# tests/device/mptutil.py's agent_flash(), on the board or from the host)
# through firmware/main.py's own boot(), linked by the real serial transport to LoopUart,
# the bridge in-process. run(agent, n) then does n cycles (read, filter, estimate, decide,
# encode, store, send, ack) of 600 simulated seconds each.
import gc
import time

from protocol import cbor, cose, framing

KEY = bytes(range(32))
ACK = 16


class LoopUart:
    """The far end of the board's UART: the bridge, in-process, built from device modules
    only (no host-side decoding in the device's heap). The agent talks to it through the
    real serial transport (firmware/transport_serial.py, Deframer included), as a board
    with a UART does. Each frame written is verified (MAC) and acked."""

    def __init__(self):
        self.rx = bytearray(64)   # ack bytes waiting to be read (an ack frame is ~30 B)
        self.n_rx = 0
        self.pos = 0
        self.dseq = 0
        self.ack = {0: ACK, 1: 0}
        self.n = 0

    def write(self, frame):
        kid, seq, raw = cose.verify(framing.decode_frame(bytes(frame).strip(b"\0")), lambda k: KEY)
        self.n += 1
        self.dseq += 1
        self.ack[1] = seq
        f = framing.encode_frame(cose.encode(KEY, b"b", self.dseq, cbor.dumps(self.ack), cose.AAD_DOWN))
        if self.pos == self.n_rx:
            self.pos = self.n_rx = 0
        if self.n_rx + len(f) <= len(self.rx):     # else dropped, as a full UART FIFO would
            self.rx[self.n_rx:self.n_rx + len(f)] = f
            self.n_rx += len(f)
        return len(frame)

    def any(self):
        return self.n_rx - self.pos

    def readinto(self, b):
        if self.pos >= self.n_rx:
            return 0
        b[0] = self.rx[self.pos]
        self.pos += 1
        return 1


def boot(root):
    from firmware import main, transport_serial
    uart = LoopUart()
    a = main.boot(root, transport=transport_serial.Serial(uart=uart), verbose=False)
    # A reboot (bench_memory.runs(): the same flash booted again): the host bridge's
    # downlink counter survives its restarts (host_tools/bridge.py leases it in blocks),
    # this one restarts with the process, so it starts a block above the board's replay
    # floor, as a leased block would; from 0, every ack would be refused as a replay
    uart.dseq = a.downlink.seq + 1000
    gc.collect()
    return a, uart


def run(a, n):
    """n cycles, each followed by gc.collect() as firmware/main.py's loop does ->
    (warm, end, alloc, us per cycle, peak): heap in use after min(1000, n // 2) cycles and
    at the end, the most one cycle allocated (garbage included: MicroPython boxes every
    float result, and the estimator's refit is float arithmetic over its ring), and the
    peak of gc.mem_alloc(), read at each cycle's end before its collection (with a heap
    too large to collect inside a cycle: live data plus that cycle's garbage)."""
    from firmware import hal
    w = hal.world()
    alloc = peak = 0
    gc.collect()
    warm = before = gc.mem_alloc()
    t0 = time.ticks_us()
    for i in range(n):
        w.advance(600)
        a.cycle()
        a.service()
        m = gc.mem_alloc() - before
        if m > alloc:
            alloc = m
        if m + before > peak:
            peak = m + before
        gc.collect()
        before = gc.mem_alloc()
        if i == min(1000, n // 2):
            warm = before
    dt = time.ticks_diff(time.ticks_us(), t0)
    return warm, before, alloc, dt // max(n, 1), peak
