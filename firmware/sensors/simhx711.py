"""An HX711 as its pins show it (Avia HX711 datasheet: "Serial Interface", Fig.2, Table 3;
"Reset and Power-Down", Fig.3; Table 1 settling time), for the device tests and the
virtual board. It models the chip, not the driver:

- it converts continuously at `rate` SPS from power-up; DOUT goes low when a conversion
  is ready and back high after the 25th PD_SCK pulse; 25/26/27 pulses choose the next
  conversion's gain (A/128, B/32, A/64), fewer or more are counted in `bad_readouts`;
- PD_SCK high for more than 60 us powers it down (DOUT high, a readout in progress is
  lost); the next low edge resets it: gain A/128, and 400 ms (10 SPS) / 50 ms (80 SPS) of
  unsettled conversions (they ramp up from 0) before the real value;
- faults (`mode`): "ok"; "stuck" = DOUT held low (dead chip, unpowered chip pulled down
  through its ESD diodes, solder short): every bit reads 0; "float" = DOUT not driven (open
  wire, no chip): the MCU's pull-up if the pin has one, else noise;
- every conversion carries a few counts of noise, as a live 24-bit converter does.

`value` is the input as a signed code at gain 128 (or a function returning it, or None to
repeat the last one); gain 64 halves it. Time comes from `ticks_us()`/`ticks_diff()`:
hal_simx.cpu_us on the virtual board (real time, except inside the driver's interrupts-off
readout), tests pass a clock that advances 1 us per call (about one bit-banged edge).
Only small ints are used on the pin path (no allocation, so no GC pause mid-readout).

pin(p, v) answers a Pin p's value(v) for the pins dout_id and sck_id (hal_sim.Pin delegates
to it on the virtual board, the device tests' pins do the same).
"""
from firmware.compat import const
from firmware.sensors.simnoise import xorshift32

_PD_US = const(60)

_GAIN = (0, 0, 0, 128, 32, 64)   # index: pulses - 22 (25 -> 128, 26 -> 32, 27 -> 64)


class HX711Chip:
    def __init__(self, ticks_us, ticks_diff, value=0, rate=10, noise=8, seed=1):
        self._ticks, self._diff = ticks_us, ticks_diff
        self._prev = ticks_us()
        self._t = 0            # microseconds since the model was made (from tick diffs)
        self.value = value
        self.period = 100000 if rate == 10 else 12500
        self.settle = 400000 if rate == 10 else 50000
        self.noise = noise
        self._rng = seed or 1
        self.mode = "ok"
        self.pull_up = False
        self.sck = 0
        self._rise = 0
        self.powered = True
        self.gain = 128
        self.n = 0             # pulses of the readout in progress
        self.code = 0          # the 24-bit code being shifted out
        self._last = 0
        self.readouts = []     # pulse count of the last finished readouts (8 at most)
        self.bad_readouts = 0
        self.stray = 0
        self.power_downs = 0
        self.irq_off = False   # the test's disable_irq sets it
        self.clocked_with_irq = 0
        self._reset(0)

    def _reset(self, t):
        self.t_up = t
        self.t_read = t        # conversions up to here are consumed
        self.settled_at = t + self.settle
        self.gain = 128
        self.n = 0
        self.avail = False     # a conversion latched, shown on DOUT (low), not clocked yet

    def _us(self):
        u = self._ticks()
        d = self._diff(u, self._prev)
        if d > 0:                     # never backwards (see hal_simx.cpu_us)
            self._t += d
        self._prev = u
        return self._t

    def _noise(self):
        self._rng = x = xorshift32(self._rng)
        return x % (2 * self.noise + 1) - self.noise if self.noise else 0

    def _check_pd(self, t):
        if self.sck and self.powered and t - self._rise > _PD_US:
            self.powered = False
            self.power_downs += 1
            if self.n:
                self.bad_readouts += 1
            self.n = 0
            self.avail = False

    def _latest(self, t):
        """Completion time of the newest conversion, or None if none since power-up."""
        k = (t - self.t_up) // self.period
        return self.t_up + k * self.period if k > 0 else None

    def _ready(self, t):
        c = self._latest(t)
        return c is not None and c > self.t_read

    def _convert(self, c):
        v = self.value
        if callable(v):
            v = v()
        if v is None:
            v = self._last
        self._last = v
        v = v * self.gain // 128 if self.gain != 32 else v // 4
        if c < self.settled_at:          # the digital filter is still settling
            v = v * (c - self.t_up) // self.settle
        v += self._noise()
        v = max(-0x800000, min(0x7FFFFF, int(v)))
        return v & 0xFFFFFF

    def _finish(self):
        n = self.n
        r = self.readouts
        r.append(n)
        if len(r) > 8:
            # bounded: a board reads it 5 times a sample for months of simulated time;
            # unbounded, the list filled any heap (virtual-propane's memory run failed
            # within 3,000 samples at 96K: tests/host/test_memory32.py)
            r.pop(0)
        if 25 <= n <= 27:
            g = _GAIN[n - 22]
            if g != self.gain:           # a new channel/gain settles like a power-up
                self.gain = g
                self.settled_at = self.t_read + self.settle
        else:
            self.bad_readouts += 1
        self.n = 0

    # ---- the two pins --------------------------------------------------------
    def dout(self):
        t = self._us()
        self._check_pd(t)
        m = self.mode
        if m == "stuck":
            return 0
        if m == "float":
            return 1 if self.pull_up else self._noise() & 1
        if not self.powered:
            return 1
        n = self.n
        if 1 <= n <= 24:
            return (self.code >> (24 - n)) & 1
        if n and self._ready(t):
            self._finish()             # the pulses after the 24th are over: next conversion
            n = 0
        if n:
            return 1                   # pulled high by the 25th pulse
        if self.avail:
            return 0
        if self._ready(t):
            c = self._latest(t)
            self.code = self._convert(c)   # latched while PD_SCK is low
            self.t_read = c
            self.avail = True
            return 0
        return 1

    def set_sck(self, v):
        t = self._us()
        self._check_pd(t)
        v = 1 if v else 0
        if v and not self.sck:
            self._rise = t
            if not self.irq_off:
                self.clocked_with_irq += 1
            if self.powered and self.mode == "ok":
                self._pulse(t)
        elif not v and self.sck and not self.powered:
            self.powered = True        # low after a power-down: reset (Fig.3)
            self._reset(t)
        self.sck = v

    def _pulse(self, t):
        if self.n >= 25 and self._ready(t):
            self._finish()             # a new conversion is ready: that readout is over
        if self.n:
            self.n += 1
            return
        if not self.avail and self._ready(t):   # clocked without looking at DOUT first
            c = self._latest(t)
            self.code = self._convert(c)
            self.t_read = c
            self.avail = True
        if self.avail:
            self.avail = False
            self.n = 1
        else:
            self.stray += 1            # a pulse while DOUT says busy

    def flush(self):
        """End the readout in progress (tests look at `readouts` after the last one)."""
        if self.n:
            self._finish()

    # ---- as pins ------------------------------------------------------------------
    def pin(self, p, v=None):
        """Pin p's value(v): p.id is `dout_id` or `sck_id`; p.pull tells a pull-up."""
        if p.id == self.dout_id:
            self.pull_up = p.pull == 1     # Pin.PULL_UP on both HALs' simulated pins
            return self.dout()
        if v is None:
            return self.sck
        self.set_sck(v)

    dout_id = "dout"
    sck_id = "sck"


def attach(chip, dout, sck):
    """Wire `chip` to the simulated GPIOs dout and sck (hal_sim.Pin asks it for them)."""
    from firmware import hal_sim
    chip.dout_id, chip.sck_id = dout, sck
    hal_sim.chips[dout] = hal_sim.chips[sck] = chip


def in_world(w, board):
    """On the virtual board with an hx711 sensor: a chip on the board's pins whose input is
    the world's noisy level as grams on the platform (geometry tare + level * per_unit),
    in counts (calibration offset + grams * scale). The control command `sensor MODE`
    (firmware/sensors/simctl.py) sets its mode: ok, stuck, float."""
    from firmware import hal_simx
    s, g = board["sensor"], board.get("geometry", {})
    c = s.get("calibration", {})
    off, k = c.get("offset", 0), c.get("scale", 1.0)
    tare, per = g.get("tare", 0), g.get("per_unit", 1.0)

    def counts():
        q = w.read_sensor()
        return None if q is None else int(off + (tare + q * per) * k)
    chip = HX711Chip(hal_simx.cpu_us, hal_simx.time.ticks_diff, counts, s.get("rate", 10))
    attach(chip, s["pins"]["dout"], s["pins"]["sck"])
    w.chip = chip
