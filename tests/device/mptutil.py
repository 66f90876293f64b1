# Scratch directories for the MicroPython device tests (the unix port has no shutil or
# tempfile). Runs on CPython too.
import os


class Rng:
    """xorshift32: the same sequence on every runtime (estimator tests)."""
    def __init__(self, seed):
        self.x = seed * 2654435761 & 0xFFFFFFFF or 1

    def u(self, a=0.0, b=1.0):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return a + (b - a) * x / 4294967296.0


def rmtree(path):
    """Remove path and everything under it; a missing path is fine."""
    path = path.rstrip("/")
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        p = path + "/" + n
        try:
            os.remove(p)
        except OSError:
            rmtree(p)
    os.rmdir(path)


def scratch(tag, end=""):
    """A new empty directory /tmp/sc-<tag>-<random>; `end` is appended ("/" for a root)."""
    path = "/tmp/sc-%s-%s" % (tag, "".join("%02x" % b for b in os.urandom(4)))
    os.mkdir(path)
    return path + end


def agent_flash(root, key, board_path="boards/virtual.json"):
    """Write a board's flash for tests/device/memrun.py: board.json, provision.json (device
    m1, `key`, full consent) and sim.json (manual clock, no control file, refill 2 days
    after empty). tests/benchmarks/bench_memory.py calls it from the host (CPython)."""
    import json
    with open(board_path) as f:
        b = f.read()
    with open(root + "board.json", "w") as f:
        f.write(b)
    with open(root + "provision.json", "w") as f:
        json.dump({"device_id": "m1", "key": "".join("%02x" % x for x in key), "consent": 4}, f)
    with open(root + "sim.json", "w") as f:
        json.dump({"speed": 0, "ctl": None, "refill_after_days": 2}, f)


class Clock:
    """A test's clock for drivers and chip models: ticks_us() advances 1 us per call (about
    one bit-banged pin edge), sleep_ms/sleep_us advance as asked. Exact and load-free."""

    def __init__(self):
        self.us = 0

    def ticks_us(self):
        self.us += 1
        return self.us

    def ticks_ms(self):
        return self.us // 1000

    @staticmethod
    def ticks_diff(a, b):
        return a - b

    def sleep_ms(self, ms):
        self.us += ms * 1000

    def sleep_us(self, us):
        self.us += us


class OutPin:
    """A driver's output pin wired to a chip model: keeps its level, tells fn(v) each write
    (a sonar's TRIG, a VL53L0X's XSHUT)."""

    def __init__(self, fn, v=0):
        self.fn, self.v = fn, v

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        self.fn(v)
