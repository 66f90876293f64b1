"""HX711 24-bit load-cell ADC, bit-banged (datasheet timing).

DOUT goes low when a conversion is ready (10 or 80 SPS). Each PD_SCK pulse shifts
out one bit, MSB first, two's complement. After the 24 data bits, 1/2/3 more
pulses select channel+gain of the NEXT conversion: 25 = A/128, 26 = B/32,
27 = A/64. PD_SCK held high > 60 us powers the chip down, so the clock loop runs
with interrupts disabled and no sleeps (each edge is already > 0.2 us apart).

read() gives grams (trimmed mean of `samples` conversions, minus `offset`,
divided by `scale` counts per gram), or None when DOUT never goes low within
`timeout_ms` (chip absent, unpowered, DOUT floating high) or the reading is
saturated (0x7FFFFF / 0x800000: bridge wiring open).
"""
from firmware.compat import const
from firmware.sensors import insort

_SAT_HI = const(0x7FFFFF)
_SAT_LO = const(0x800000)
_EXTRA = {128: 1, 32: 2, 64: 3}


def _noirq():
    return 0


def _irq(state):
    pass


class HX711:
    def __init__(self, dout, sck, gain=128, offset=0, scale=1.0, samples=5, trim=1,
                 timeout_ms=200, ticks_ms=None, ticks_diff=None, sleep_ms=None,
                 disable_irq=_noirq, enable_irq=_irq):
        import time
        self.dout, self.sck = dout, sck
        self.extra = _EXTRA[gain]   # KeyError for a gain the chip does not have
        self.offset, self.scale = offset, scale
        self.samples, self.trim = samples, trim
        self.timeout_ms = timeout_ms
        self._ticks = ticks_ms or time.ticks_ms
        self._diff = ticks_diff or time.ticks_diff
        self._sleep = sleep_ms or time.sleep_ms
        self._dis, self._en = disable_irq, enable_irq
        self._buf = [0] * samples   # reused by every read: no allocation per reading

    def setup(self):
        self.sck.value(0)           # low = powered up
        self.read_raw()             # first conversion also latches the gain

    def read_raw(self):
        """One conversion as a signed int, or None (timeout / saturated)."""
        t0 = self._ticks()
        while self.dout.value():
            if self._diff(self._ticks(), t0) > self.timeout_ms:
                return None
            self._sleep(1)
        sck, dout = self.sck, self.dout
        v = 0
        st = self._dis()
        try:
            for _ in range(24):
                sck.value(1)
                sck.value(0)
                v = (v << 1) | dout.value()
            for _ in range(self.extra):
                sck.value(1)
                sck.value(0)
        finally:
            self._en(st)
        if v == _SAT_HI or v == _SAT_LO:
            return None
        if v & 0x800000:
            v -= 0x1000000
        return v

    def read_avg_raw(self):
        """Trimmed mean of `samples` conversions; None if fewer than half are valid."""
        b = self._buf
        k = 0
        for _ in range(self.samples):
            r = self.read_raw()
            if r is None:
                continue
            k = insort(b, k, r)
        if k * 2 < self.samples:
            return None
        t = self.trim if k > 2 * self.trim else 0
        s = 0
        for i in range(t, k - t):
            s += b[i]
        return s / (k - 2 * t)

    def read(self):
        r = self.read_avg_raw()
        return None if r is None else (r - self.offset) / self.scale

    def tare(self):
        """Current load becomes zero. Returns False if the sensor gave nothing."""
        r = self.read_avg_raw()
        if r is None:
            return False
        self.offset = r
        return True

    def calibrate(self, known_g):
        """With `known_g` grams on the cell (after tare), set the scale factor."""
        r = self.read_avg_raw()
        if r is None or r == self.offset:
            return False
        self.scale = (r - self.offset) / known_g
        return True

    def power_down(self):
        self.sck.value(0)
        self.sck.value(1)   # > 60 us high: the chip sleeps until the line goes low

    def power_up(self):
        self.sck.value(0)


def create(s):
    """From a board "sensor" section: pins {dout, sck}, calibration {offset, scale, gain}."""
    from firmware import hal
    p, c = s["pins"], s.get("calibration", {})
    return HX711(hal.Pin(p["dout"], hal.Pin.IN), hal.Pin(p["sck"], hal.Pin.OUT, value=0),
                 c.get("gain", 128), c.get("offset", 0), c.get("scale", 1.0),
                 s.get("samples", 5), s.get("trim", 1), s.get("timeout_ms", 200),
                 hal.ticks_ms, hal.ticks_diff, hal.sleep_ms, hal.disable_irq, hal.enable_irq)
