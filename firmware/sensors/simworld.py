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

# slots of World.data. 0.._SIM are what the state file keeps. simctl.py and simstate.py
# repeat the slots they use (a const is private to its module): keep the files in step.
_NOISE = const(0)     # sensor noise, spike and dropout probability (config, `noise N` ...)
_SPIKE = const(1)
_DROP = const(2)
_T = const(3)         # simulated time up to which consumption has been applied
_LEVEL = const(4)     # the true level at _T
_EMPTY = const(5)     # when it ran empty (inf: not empty)
_SIM = const(6)       # the clock: simulated seconds
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
_SEED = const(19)
_RNG = const(20)      # state of the xorshift32 stream of the sensor model
_OH0 = const(21)      # office hours [_OH0, _OH1)
_OH1 = const(22)
_NORM = const(23)     # sum of a weekday's hourly weights
_TMP = const(24)      # scratch for the per-hour hash
_LAST = const(25)     # ticks_ms of the last now()
_CTLLAST = const(26)  # ticks_ms of the last control file poll
_PEND = const(27)     # presses not yet seen by the pin
_DOWN = const(28)     # reads of the pin during the current press
_RI = const(29)       # slot of the next scheduled refill (sorted times follow _N)
_N = const(30)

_HOUR = const(3600)
_DAY = const(86400)
_M32 = const(0xFFFFFFFF)


def uniform(s, i=_RNG):
    """One xorshift32 step of the number in s[i] (0 counts as 0x9E3779B9), stored back;
    -> the new number / 2**32, a uniform float in [0, 1)."""
    x = int(s[i]) or 0x9E3779B9
    x ^= (x << 13) & _M32
    x ^= x >> 17
    x ^= (x << 5) & _M32
    s[i] = x
    return x / s[_K32]


class World:
    def __init__(self, cfg=None, button_pin=None):
        c = cfg or {}
        # config key (or "-") and default of each slot, in slot order; then "refills"
        k = ("noise spike_p dropout_p start_s level - - capacity rate_per_day office off weekend "
             "jitter refill_after_days ctl_ms speed - - - refills").split()
        r = sorted(c.get(k[-1], ()))
        s = self.data = array("d", range(_N + len(r)))
        for i, v in enumerate("0 0 0 0 0 inf 0 100 10 1 .05 .1 .5 inf 250 1 .2 .3 4294967296".split()):
            x = c.get(k[i])
            s[i] = float(v if x is None else x)
        if c.get("level") is None:
            s[_LEVEL] = s[_CAP]
        s[_SIM] = s[_T]
        s[_RAFTER] *= _DAY
        s[_RI] = _N
        for i in range(len(r)):
            s[_N + i] = float(r[i]) * _DAY
        x = s[_SEED] = int(c.get("seed", 1)) & _M32
        s[_RNG] = x ^ 0xA5A5A5A5      # the sensor's stream starts hashed like an hour below
        uniform(s, _RNG)
        s[_RNG] = int(s[_RNG]) * 0x2545F491 & _M32
        oh = c.get("office_hours", (8, 18))
        s[_OH0] = a = int(oh[0])
        s[_OH1] = b = int(oh[1])
        s[_NORM] = (b - a) * s[_WON] + (24 - (b - a)) * s[_WOFF]
        s[_LAST] = s[_CTLLAST] = ticks_ms()
        s[_PEND] = s[_DOWN] = 0
        self.capacity = s[_CAP]
        self.rate = s[_RPD]
        self.speed = s[_SPEED]
        self.presses = 0        # total presses injected
        self.refill_count = 0
        self.button_pin = c.get("button_pin", button_pin)
        self.ctl = c.get("ctl", "ctl")
        self.state = c.get("state")
        if self.state:
            from firmware.sensors import simstate
            simstate.boot(self)

    def now(self):
        """Simulated seconds (float). Polls the control file at most every ctl_ms."""
        s = self.data
        ms = ticks_ms()
        if self.speed:
            s[_SIM] += ticks_diff(ms, int(s[_LAST])) * self.speed / 1000
        s[_LAST] = ms
        if self.ctl and ticks_diff(ms, int(s[_CTLLAST])) >= s[_CTLMS]:
            s[_CTLLAST] = ms
            self.poll()
        return s[_SIM]

    def advance(self, s):
        """Move the simulated clock forward by s seconds (manual clock / tests)."""
        self.data[_SIM] += s

    def set_speed(self, s):
        self.now()  # settle time elapsed at the old speed first
        self.speed = float(s)

    def level(self, t=None):
        """True remaining quantity at simulated time t (default: now). Consumption is
        applied in segments that end at hour boundaries or refill times."""
        s = self.data
        if t is None:
            t = self.now()
        while s[_T] < t:
            t0 = s[_T]
            end = min(t, (t0 // _HOUR + 1) * _HOUR)
            i = int(s[_RI])
            ref = i < len(s) and s[i] <= end
            if ref:
                end = max(s[i], t0)
            if s[_LEVEL] > 0:
                # the rate (units per second) in the simulated hour h: a weekday's
                # rate_per_day spread by the hourly weights, less at weekends, jittered
                h = int(t0 // _HOUR)
                hod = h % 24
                r = self.rate * (s[_WON] if s[_OH0] <= hod < s[_OH1] else s[_WOFF]) / s[_NORM] / _HOUR
                if h // 24 % 7 >= 5:
                    r *= s[_WEEKEND]
                # jitter from a hash of (seed, hour): an xorshift32 step plus a multiply
                s[_TMP] = (int(s[_SEED]) ^ h * 0x9E3779B1) & _M32
                uniform(s, _TMP)
                u = (int(s[_TMP]) * 0x2545F491 & _M32) / s[_K32]
                s[_LEVEL] -= r * (1 + s[_JIT] * (2 * u - 1)) * (end - t0)
                if s[_LEVEL] <= 0:
                    s[_LEVEL] = 0
                    s[_EMPTY] = end
            s[_T] = end
            if ref:
                s[_RI] = i + 1
                self.refill()
            if end >= s[_EMPTY] + s[_RAFTER]:
                self.refill()
        return s[_LEVEL]

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
        if s[_DROP] and uniform(s) < s[_DROP]:
            return None
        if s[_NOISE]:
            # sum of three uniforms: cheap, bell-shaped, unit standard deviation
            q += ((uniform(s) + uniform(s) + uniform(s)) * 2 - 3) * s[_NOISE] * self.capacity
        if s[_SPIKE] and uniform(s) < s[_SPIKE]:
            x = (s[_K02] + s[_K03] * uniform(s)) * self.capacity
            q += x if uniform(s) * 2 < 1 else -x
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
