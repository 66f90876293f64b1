"""The simulated world of the virtual board (re-exported as hal_sim.World).
Config keys are listed in the comment below; the control file in simctl.py."""
# `World(cfg)` models one consumable over simulated time. Config keys (all optional):
#
#   seed            PRNG seed (int). Same seed + same calls -> same numbers.
#   speed           simulated seconds per real second (0 = manual clock: only
#                   `advance()` moves time, which makes tests fully deterministic)
#   start_s         simulated time at start; t=0 is Monday 00:00
#   capacity        full quantity in consumable units (e.g. 3000 pages)
#   level           initial quantity (default: capacity)
#   rate_per_day    average consumption on a weekday
#   office_hours    [start_h, end_h]; hours inside get weight `office`, others `off`
#   office, off     hourly weights (defaults 1.0 and 0.05); a day's weights are
#                   normalised so a weekday consumes `rate_per_day` on average
#   weekend         multiplier for Saturday/Sunday (default 0.1)
#   jitter          per-hour random factor in [1-jitter, 1+jitter] (default 0.5)
#   noise           sensor noise, standard deviation as a fraction of capacity
#   spike_p         probability that a reading carries a spike of 20..50 % FS
#   dropout_p       probability that a reading is lost (sensor returns None)
#   refills         list of days (float) at which the consumable is refilled full
#   refill_after_days  refill automatically this many days after it ran empty
#   ctl             control file path (default "ctl", relative to the board's
#                   flash directory, which is the unix port's cwd); null disables
#   ctl_ms          how often (real ms) the control file is polled (default 250)
#   button_pin      pin id that reads the simulated button (default: board pins.button)
#   state           file (relative to the flash directory) that keeps the world across
#                   power cuts (firmware/sensors/simstate.py); null: off
#
# Consumption is computed per simulated hour from a hash of (seed, hour), so the
# true level at time t does not depend on how often it was queried.
#
# Integers: the clock, the consumption time, refill times, the PRNG streams and ticks_ms
# stamps live in a second array, `World.ints` (int32 and uint32 slots _I*). An ESP32's
# MicroPython (and the ESP32-shaped test build) has float32 arithmetic: an array("d")
# stores doubles, but every value goes through a float32 on its way in and out, so an
# int above 2**24 is rounded there (a 32-bit PRNG state loses its low bits, a ticks_ms
# stamp is off by up to 64 ms, and the clock stops advancing at speed 1 after 194 days,
# when 50 ms of real time is below its resolution). now() is an int of seconds, as
# time.time() is on an ESP32.
#
# RAM: the world shares the agent's heap (64 KB on a board without PSRAM), so its numbers
# live in one preallocated array of doubles, `World.data`, indexed by the _NAME constants
# below (folded at compile time: no qstr, no RAM; a float in an attribute would be a heap
# object re-allocated on every change). Config keys that need no attribute are looked up
# through one string, so they never become qstrs either. What only the control file and
# the state file need lives in simctl.py and simstate.py, imported on first use.

from array import array
try:
    from time import ticks_ms, ticks_us, ticks_diff, ticks_add, sleep_ms, sleep_us  # noqa: F401
except ImportError:  # CPython: host tools may run the World to check results
    from firmware.cpython import const, ticks_ms, ticks_us, ticks_diff, ticks_add, sleep_ms, sleep_us  # noqa: F401
# (MicroPython's compiler folds const() itself: no import, no global `const` on a board)

# slots of World.data (floats). simctl.py and simstate.py repeat the slots they use (a
# const is private to its module): keep the files in step.
_NOISE = const(0)     # sensor noise, spike and dropout probability (config, `noise N` ...)
_SPIKE = const(1)
_DROP = const(2)
_LEVEL = const(4)     # the true level at ints[_IT]
_EMPTY = const(5)     # when it ran empty (inf: not empty)
_CAP = const(7)       # capacity (also the attribute `capacity`)
_RPD = const(8)       # rate_per_day as configured (the live one is the attribute `rate`)
_WON = const(9)       # hourly weight inside office hours
_WOFF = const(10)     # ... outside them
_WEEKEND = const(11)
_JIT = const(12)
_RAFTER = const(13)   # refill_after_days, in seconds (inf: never)
_CTLMS = const(14)
_SPEED = const(15)    # speed as configured (the live one is the attribute `speed`)
_K02 = const(16)      # 0.2, 0.3, 2**32: constants of the sensor model
_K03 = const(17)
_K32 = const(18)
_OH0 = const(21)      # office hours [_OH0, _OH1)
_OH1 = const(22)
_NORM = const(23)     # sum of a weekday's hourly weights
_PEND = const(27)     # presses not yet seen by the pin
_DOWN = const(28)     # reads of the pin during the current press
_N = const(30)        # (slots 3, 6, 19, 20, 24-26, 29: config read at start, or unused)

# slots of World.ints (uint32)
_ISEED = const(0)
_IRNG = const(1)      # state of the xorshift32 stream of the sensor model
_ITMP = const(2)      # scratch for the per-hour hash
_ILAST = const(3)     # ticks_ms of the last now()
_ICTL = const(4)      # ticks_ms of the last control file poll
_ISEC = const(5)      # the clock: simulated seconds ...
_IMS = const(6)       # ... and milliseconds
_IT = const(7)        # simulated second up to which consumption has been applied
_IRI = const(8)       # slot of the next scheduled refill (sorted times, seconds, follow _IN)
_IRTC = const(9)      # clock at the last power-on: the device's RTC counts from there
_IN = const(10)

_HOUR = const(3600)
_DAY = const(86400)
_M32 = const(0xFFFFFFFF)


def uniform(w, i=_IRNG):
    """One xorshift32 step of the number in w.ints[i] (0 counts as 0x9E3779B9), stored
    back; -> the new number / 2**32, a uniform float in [0, 1)."""
    n = w.ints
    x = n[i] or 0x9E3779B9
    x ^= (x << 13) & _M32
    x ^= x >> 17
    x ^= (x << 5) & _M32
    n[i] = x
    return x / w.data[_K32]


class World:
    def __init__(self, cfg=None, button_pin=None):
        # built by simsetup.py, whose code is dropped again (the world shares the agent's heap)
        import sys
        from firmware import sensors
        from firmware.sensors import simsetup
        simsetup.init(self, cfg or {}, button_pin)
        sys.modules.pop("firmware.sensors.simsetup", None)
        try:
            delattr(sensors, "simsetup")
        except (AttributeError, KeyError):   # (MicroPython: KeyError for a missing one)
            pass

    def now(self):
        """The device's time.time(): simulated seconds (an int) since its last power-on.
        An ESP32's RTC timer keeps counting through deep sleep and every reset except a
        power-on reset, which restarts it (ESP-IDF, System Time: "RTC timer");
        simstate.power_on() does that. The world's own clock is ints[_ISEC]. Polls the
        control file at most every ctl_ms."""
        n = self.ints
        ms = ticks_ms()
        if self.speed:
            self.advance(ticks_diff(ms, n[_ILAST]) * self.speed / 1000)
        n[_ILAST] = ms
        if self.ctl and ticks_diff(ms, n[_ICTL]) >= self.data[_CTLMS]:
            n[_ICTL] = ms
            self.poll()
        return n[_ISEC] - n[_IRTC]

    def advance(self, s):
        """Move the simulated clock forward by s seconds (manual clock / tests); whole
        milliseconds are kept, the rest carried in ints[_IMS]."""
        n = self.ints
        d = int(s * 1000) + n[_IMS]
        n[_ISEC] += d // 1000
        n[_IMS] = d % 1000

    def set_speed(self, s):
        self.now()  # settle time elapsed at the old speed first
        self.speed = float(s)

    def level(self, t=None):
        """True remaining quantity at simulated time t (default: now). Consumption is
        committed in whole segments that end at hour boundaries, refill times or an
        automatic refill; the part of the current segment up to t is computed, not
        committed. So the level at t is the same whatever the queries before it were,
        with float32 arithmetic too (committing up to every query would round
        differently for every query pattern)."""
        s = self.data
        n = self.ints
        if t is None:
            self.now()          # (the clock moves on, the control file is read)
            t = n[_ISEC]
        t = int(t)
        while True:
            t0 = n[_IT]
            q = s[_LEVEL]
            r = 0
            if q > 0:
                # the rate (units per second) in the simulated hour h: a weekday's
                # rate_per_day spread by the hourly weights, less at weekends, jittered
                h = t0 // _HOUR
                hod = h % 24
                r = self.rate * (s[_WON] if s[_OH0] <= hod < s[_OH1] else s[_WOFF]) / s[_NORM] / _HOUR
                if h // 24 % 7 >= 5:
                    r *= s[_WEEKEND]
                # jitter from a hash of (seed, hour): an xorshift32 step plus a multiply
                n[_ITMP] = (n[_ISEED] ^ h * 0x9E3779B1) & _M32
                uniform(self, _ITMP)
                r *= 1 + s[_JIT] * (2 * (n[_ITMP] * 0x2545F491 & _M32) / s[_K32] - 1)
            end = (t0 // _HOUR + 1) * _HOUR
            i = n[_IRI]
            ref = i < len(n) and n[i] <= end
            if ref:
                end = max(n[i], t0)
            auto = s[_EMPTY] + s[_RAFTER]
            if auto <= end:
                a = int(auto)
                end = max(a + (a < auto), t0)   # the whole second at or after it
                ref = False
            if end > t:
                break
            if q > 0:
                q -= r * (end - t0)
                if q <= 0:
                    s[_EMPTY] = end + q / r    # the instant it ran out
                    q = 0
                s[_LEVEL] = q
            n[_IT] = end
            if ref:
                n[_IRI] = i + 1
                self.refill()
            elif end >= auto:
                self.refill()
        if q > 0 and t > t0:    # (a query before the committed time gets that level)
            q -= r * (t - t0)
        return q if q > 0 else 0

    def refill(self, n=None):
        """Refill to n units (default: capacity)."""
        s = self.data
        s[_LEVEL] = self.capacity if n is None else n
        s[_EMPTY] = float("inf")
        self.refill_count += 1

    def read_sensor(self):
        """A noisy measurement of the level, or None for a dropout."""
        q = self.level()
        s = self.data
        if s[_DROP] and uniform(self) < s[_DROP]:
            return None
        if s[_NOISE]:
            # sum of three uniforms: cheap, bell-shaped, unit standard deviation
            q += ((uniform(self) + uniform(self) + uniform(self)) * 2 - 3) * s[_NOISE] * self.capacity
        if s[_SPIKE] and uniform(self) < s[_SPIKE]:
            x = (s[_K02] + s[_K03] * uniform(self)) * self.capacity
            q += x if uniform(self) * 2 < 1 else -x
        return q

    def press(self, n=1):
        self.presses += n
        self.data[_PEND] += n

    def pin_level(self):
        """Button pin level (active low). A press holds the pin low for 3 reads,
        long enough for any polling debouncer, then releases it for 3 reads."""
        s = self.data
        if s[_PEND] <= 0:
            return 1
        s[_DOWN] += 1
        if s[_DOWN] <= 3:
            return 0
        if s[_DOWN] >= 6:
            s[_DOWN] = 0
            s[_PEND] -= 1
        return 1

    def command(self, line=None):
        """Run one control line (True if understood), or with no line the control file
        (-> commands run); see simctl.py. The state file is saved after a change."""
        from firmware.sensors import simctl   # only loaded when a control file is used
        return simctl.run(self, line)

    poll = command
