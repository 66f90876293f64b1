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

import time
try:
    ticks_ms = time.ticks_ms
    ticks_us = time.ticks_us
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
    sleep_ms = time.sleep_ms
    sleep_us = time.sleep_us
except AttributeError:  # CPython: host tools may run the World to check results
    ticks_ms = lambda: int(time.monotonic() * 1000)  # noqa: E731
    ticks_us = lambda: int(time.monotonic() * 1000000)  # noqa: E731
    ticks_diff = lambda a, b: a - b  # noqa: E731
    ticks_add = lambda a, b: a + b  # noqa: E731
    sleep_ms = lambda ms: time.sleep(ms / 1000)  # noqa: E731
    sleep_us = lambda us: time.sleep(us / 1000000)  # noqa: E731

_HOUR = 3600
_DAY = 86400
_M32 = 0xFFFFFFFF


def _mix(x):
    # one xorshift32 step plus a multiply: enough to decorrelate (seed, hour)
    x &= _M32
    if x == 0:
        x = 0x9E3779B9
    x ^= (x << 13) & _M32
    x ^= x >> 17
    x ^= (x << 5) & _M32
    return (x * 0x2545F491) & _M32


class World:
    def __init__(self, cfg=None, button_pin=None):
        c = cfg or {}
        self.seed = int(c.get("seed", 1)) & _M32
        self._rng = _mix(self.seed ^ 0xA5A5A5A5)
        self.capacity = float(c.get("capacity", 100))
        self.rate = float(c.get("rate_per_day", 10))
        oh = c.get("office_hours", (8, 18))
        self._oh0, self._oh1 = int(oh[0]), int(oh[1])
        self._w_on = float(c.get("office", 1.0))
        self._w_off = float(c.get("off", 0.05))
        self.weekend = float(c.get("weekend", 0.1))
        self.jitter = float(c.get("jitter", 0.5))
        self.noise = float(c.get("noise", 0.0))
        self.spike_p = float(c.get("spike_p", 0.0))
        self.dropout_p = float(c.get("dropout_p", 0.0))
        self._refills = sorted(float(d) * _DAY for d in c.get("refills", ()))
        self.refill_after = c.get("refill_after_days")
        self.ctl = c.get("ctl", "ctl")
        self._ctl_ms = int(c.get("ctl_ms", 250))
        bp = c.get("button_pin", button_pin)
        self.button_pin = bp
        self.speed = float(c.get("speed", 1))
        self._cs = self.speed
        self._t = float(c.get("start_s", 0))       # sim time of the state below
        self._level = float(c.get("level", self.capacity))
        self._empty_at = None
        self._sim = self._t                        # the clock
        self._last_ms = ticks_ms()
        self._ctl_last = self._last_ms
        self.presses = 0        # total presses injected
        self._pending = 0       # presses not yet seen by the pin
        self._down_reads = 0
        self.refill_count = 0
        self._state = c.get("state")
        if self._state:
            from firmware.sensors import simstate
            simstate.boot(self)

    # ---- clock -------------------------------------------------------
    def now(self):
        """Simulated seconds (float). Polls the control file at most every ctl_ms."""
        ms = ticks_ms()
        dt = ticks_diff(ms, self._last_ms)
        self._last_ms = ms
        if self.speed:
            self._sim += dt * self.speed / 1000
        if self.ctl and ticks_diff(ms, self._ctl_last) >= self._ctl_ms:
            self._ctl_last = ms
            self.poll()
        return self._sim

    def advance(self, s):
        """Move the simulated clock forward by s seconds (manual clock / tests)."""
        self._sim += s

    def set_speed(self, s):
        self.now()  # settle time elapsed at the old speed first
        self.speed = float(s)

    # ---- consumption model ------------------------------------------
    def _weight(self, hod):
        return self._w_on if self._oh0 <= hod < self._oh1 else self._w_off

    def rate_at(self, t):
        """Consumption rate (units per second) during the simulated hour holding t."""
        h = int(t // _HOUR)
        hod = h % 24
        day = (h // 24) % 7
        n_on = self._oh1 - self._oh0
        norm = n_on * self._w_on + (24 - n_on) * self._w_off
        r = self.rate * self._weight(hod) / norm / _HOUR
        if day >= 5:
            r *= self.weekend
        u = _mix(self.seed ^ (h * 0x9E3779B1)) / 4294967296.0
        return r * (1 + self.jitter * (2 * u - 1))

    def _advance_to(self, t):
        # walk forward in segments that end at hour boundaries or refill times
        while self._t < t:
            end = min(t, (self._t // _HOUR + 1) * _HOUR)
            nxt = self._refills[0] if self._refills else None
            if nxt is not None and nxt <= end:
                end = max(nxt, self._t)
            if self._level > 0:
                self._level -= self.rate_at(self._t) * (end - self._t)
                if self._level <= 0:
                    self._level = 0.0
                    self._empty_at = end
            self._t = end
            if nxt is not None and nxt <= end:
                self._refills.pop(0)
                self.refill()
            if (self.refill_after is not None and self._empty_at is not None
                    and self._t >= self._empty_at + self.refill_after * _DAY):
                self.refill()

    def settle(self):
        """Bring the consumption state up to the current clock reading."""
        self._advance_to(self._sim)

    def poll(self):
        """Run the control file now (see simctl.py); returns commands run."""
        from firmware.sensors import simctl   # only loaded when a ctl path is set
        n = simctl.poll(self)
        if n and self._state:
            self.save()
        return n

    def command(self, line):
        from firmware.sensors import simctl
        ok = simctl.command(self, line)
        if ok and self._state:
            self.save()
        return ok

    def save(self):
        from firmware.sensors import simstate
        simstate.save(self)

    def level(self, t=None):
        """True remaining quantity at simulated time t (default: now)."""
        self._advance_to(self.now() if t is None else t)
        return self._level

    def refill(self, q=None):
        self._level = self.capacity if q is None else float(q)
        self._empty_at = None
        self.refill_count += 1

    def set_level(self, q):
        self.settle()
        self._level = float(q)

    # ---- sensor model -----------------------------------------------
    def rand(self):
        """Uniform float in [0, 1) from the world's xorshift32 stream."""
        x = self._rng
        x ^= (x << 13) & _M32
        x ^= x >> 17
        x ^= (x << 5) & _M32
        self._rng = x
        return x / 4294967296.0

    def read_sensor(self):
        """A noisy measurement of the level, or None for a dropout."""
        q = self.level()
        if self.dropout_p and self.rand() < self.dropout_p:
            return None
        if self.noise:
            # sum of three uniforms: cheap, bell-shaped, unit standard deviation
            g = (self.rand() + self.rand() + self.rand() - 1.5) * 2
            q += g * self.noise * self.capacity
        if self.spike_p and self.rand() < self.spike_p:
            s = (0.2 + 0.3 * self.rand()) * self.capacity
            q += s if self.rand() < 0.5 else -s
        return q

    # ---- button -------------------------------------------------------
    def press(self, n=1):
        self.presses += n
        self._pending += n

    def pin_level(self):
        """Button pin level (active low). A press holds the pin low for 3 reads,
        long enough for any polling debouncer, then releases it for 3 reads."""
        if self._pending <= 0:
            return 1
        self._down_reads += 1
        if self._down_reads <= 3:
            return 0
        if self._down_reads >= 6:
            self._down_reads = 0
            self._pending -= 1
        return 1



