"""HX711 24-bit load-cell ADC, bit-banged.

Follows the Avia Semiconductor HX711 datasheet, sections "Serial Interface" (Fig.2, Table 3)
and "Reset and Power-Down" (Fig.3), and its Table 1 settling time:
- DOUT high = no data; DOUT low = a conversion is ready. Each PD_SCK pulse shifts out one
  bit, MSB first, 24 bits of two's complement; 1-3 more pulses (25/26/27 in all) pick the
  NEXT conversion's input and gain: A/128, B/32, A/64 (Table 3). The 25th pulse pulls DOUT
  back high, so DOUT must read high after the last pulse: a chip that is dead, unpowered
  (DOUT pulled down through its ESD diodes) or shorted leaves it low, and its 24 "data"
  bits were zeros, i.e. "0 g, empty tank". Such a conversion is refused (None), as
  ESPHome's hx711 component does.
- DOUT has no pull-up in the chip: the pin gets the MCU's, so an absent chip or an open
  wire reads "busy" (high) and times out instead of floating into random bits.
- PD_SCK high > 60 us powers the chip (and the load cell, on its regulator) down; the next
  low edge resets it to channel A / gain 128 (Fig.3). So the 25-27 pulses run with
  interrupts disabled and no sleeps (T3 PD_SCK high: 0.2-50 us), and sleep() holds PD_SCK
  high through deep sleep (an unheld pin floats and may wake or reset the chip).
- After a power-up or reset the output settles in 400 ms at 10 SPS, 50 ms at 80 SPS
  (Table 1, "settling time"): conversions finished inside that window are discarded.
Plausibility: a live 24-bit converter is never noiseless (tens of counts rms at gain 128),
so `samples` identical conversions mean a stuck bus and give None; conversions of one read
(half a second) that spread over 1/32 of full scale after trimming are noise, not a load
(an undriven DOUT without the pull-up reads random bits); so do saturated codes
(0x7FFFFF / 0x800000: input out of range, open bridge wire) and, when the board file sets
"range_g" [lo, hi], a weight the platform cannot show (e.g. far below its own empty
weight: the bridge lost its excitation).
Left out: channel B (gain 32) is selectable but its battery-sense use is not wired up; the
RATE pin and the crystal are board wiring, the board file says which rate ("rate": 10|80).

read() -> grams: trimmed mean of `samples` conversions, minus `offset`, divided by
`scale` counts per gram; None when the chip cannot vouch for the reading (`error` says
why: E_TIMEOUT, E_STUCK_LOW, E_SATURATED, E_STUCK, E_RANGE, E_NOISE).
"""
from firmware.compat import const
from firmware.sensors import insort

_SAT_HI = const(0x7FFFFF)
_SAT_LO = const(0x800000)
_EXTRA = {128: 1, 32: 2, 64: 3}
E_TIMEOUT = const(1)      # DOUT never went low: absent, unpowered, powered down, open wire
E_STUCK_LOW = const(2)    # DOUT still low after the 25th pulse: dead or shorted
E_SATURATED = const(3)
E_STUCK = const(4)        # every conversion identical: no live converter behind the pin
E_RANGE = const(5)        # outside the board's range_g
E_NOISE = const(6)        # conversions of one read spread over > 1/32 of full scale
_MAX_SPREAD = const(0x80000)


def _noirq():
    return 0


def _irq(state):
    pass


def _nohold(pin, on):
    pass


class HX711:
    def __init__(self, dout, sck, gain=128, offset=0, scale=1.0, samples=5, trim=1,
                 timeout_ms=200, ticks_ms=None, ticks_diff=None, sleep_ms=None,
                 disable_irq=_noirq, enable_irq=_irq, rate=10, range_g=None, hold=_nohold):
        import time
        self.dout, self.sck = dout, sck
        self.extra = _EXTRA[gain]   # KeyError for a gain the chip does not have
        self.offset, self.scale = offset, scale
        self.samples, self.trim = samples, trim
        self.timeout_ms = timeout_ms
        self.settle_ms = 50 if rate == 80 else 400     # datasheet Table 1
        self.range_g = range_g
        self._ticks = ticks_ms or time.ticks_ms
        self._diff = ticks_diff or time.ticks_diff
        self._sleep = sleep_ms or time.sleep_ms
        self._dis, self._en = disable_irq, enable_irq
        self._hold = hold
        self._buf = [0] * samples   # reused by every read: no allocation per reading
        self._up = None             # ticks_ms of the last power-up while still settling
        self.error = 0

    def setup(self):
        self.power_up()

    def power_up(self):
        """PD_SCK low: the chip wakes (or resets) and starts settling."""
        self._hold(self.sck, False)
        self.sck.value(0)
        self._up = self._ticks()

    def sleep(self):
        """Lowest power (< 1 uA, and the load cell's excitation off): PD_SCK high, held
        through deep sleep. setup() / power_up() wakes it (and it settles again)."""
        self.sck.value(0)
        self.sck.value(1)
        self._hold(self.sck, True)
        self._up = None

    power_down = sleep

    def read_raw(self):
        """One conversion as a signed int, or None (self.error says why)."""
        t0 = self._ticks()
        while self.dout.value():
            if self._diff(self._ticks(), t0) > self.timeout_ms:
                self.error = E_TIMEOUT
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
            done = dout.value()     # the 25th pulse pulled DOUT high
        finally:
            self._en(st)
        if not done:
            self.error = E_STUCK_LOW
            return None
        if v == _SAT_HI or v == _SAT_LO:
            self.error = E_SATURATED
            return None
        if v & 0x800000:
            v -= 0x1000000
        return v

    def _settle(self):
        """Discard what the chip converts while it settles after a power-up."""
        up = self._up
        while up is not None and self._diff(self._ticks(), up) < self.settle_ms:
            if self.read_raw() is None:
                return False
        self._up = None
        return True

    def read_avg_raw(self):
        """Trimmed mean of `samples` conversions; None if fewer than half are valid
        or they are all identical."""
        if not self._settle():
            return None
        b = self._buf
        k = 0
        for _ in range(self.samples):
            r = self.read_raw()
            if r is None:
                continue
            k = insort(b, k, r)
        if k * 2 < self.samples:
            return None
        if k > 2 and b[0] == b[k - 1]:
            self.error = E_STUCK
            return None
        t = self.trim if k > 2 * self.trim else 0
        if b[k - 1 - t] - b[t] > _MAX_SPREAD:
            self.error = E_NOISE
            return None
        s = 0
        for i in range(t, k - t):
            s += b[i]
        self.error = 0
        return s / (k - 2 * t)

    def read(self):
        r = self.read_avg_raw()
        if r is None:
            return None
        g = (r - self.offset) / self.scale
        rg = self.range_g
        if rg and not rg[0] <= g <= rg[1]:
            self.error = E_RANGE
            return None
        return g

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


def create(s):
    """From a board "sensor" section: pins {dout, sck}, calibration {offset, scale, gain},
    samples, trim, timeout_ms, rate (10|80 SPS), range_g [lo, hi]."""
    from firmware import hal
    p, c = s["pins"], s.get("calibration", {})
    return HX711(hal.Pin(p["dout"], hal.Pin.IN, hal.Pin.PULL_UP),
                 hal.Pin(p["sck"], hal.Pin.OUT, value=0),
                 c.get("gain", 128), c.get("offset", 0), c.get("scale", 1.0),
                 s.get("samples", 5), s.get("trim", 1), s.get("timeout_ms", 200),
                 hal.ticks_ms, hal.ticks_diff, hal.sleep_ms, hal.disable_irq, hal.enable_irq,
                 s.get("rate", 10), s.get("range_g"), hal.hold)
