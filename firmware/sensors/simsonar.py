"""An HC-SR04 / JSN-SR04T module as its TRIG and ECHO pins show it (see
firmware/sensors/ultrasonic.py for the datasheets), for the device tests:

- a TRIG pulse shorter than `trig_us` is ignored, as is one inside the module's 60 ms
  cycle... except that the previous burst is still ringing in a closed tank: a ping
  sooner than `cycle_ms` after the last one hears its double bounce (4 d / c after the
  old burst), a short, wrong distance;
- the echo takes 2 d / c, with c from the air's real temperature `temp_c`;
- inside the blind zone the first echo is lost in the transducer's ringing and the
  module reports the second one (2 d), if that is within range;
- beyond `max_mm` no echo comes back: ECHO stays high `no_echo_ms` (60 ms) then falls;
- with probability `second_p` a ping reports the double bounce (2 d) instead of d.

trig(v) is a write to TRIG; pulse(pin, level, timeout_us) is the module's answer to
machine.time_pulse_us; the test clock (its `us`) tells it the TRIG pulse width and the time
between pings.
"""
from firmware.sensors.simnoise import xorshift32


class SonarModel:
    def __init__(self, clock, distance_mm=1000, temp_c=20.0, blind_mm=250, max_mm=4500,
                 trig_us=10, second_p=0.0, cycle_ms=60, no_echo_ms=60, seed=7):
        self.clk = clock
        self.distance_mm = distance_mm
        self.temp_c = temp_c
        self.blind_mm, self.max_mm, self.trig_us = blind_mm, max_mm, trig_us
        self.second_p = second_p
        self.cycle_us = cycle_ms * 1000
        self.no_echo_us = no_echo_ms * 1000
        self._rng = seed
        self._hi = None          # time TRIG went high
        self._armed = False      # a valid TRIG pulse is waiting for time_pulse_us
        self._last = None        # time of the last burst
        self.pings = 0

    def _u(self):
        self._rng = x = xorshift32(self._rng)
        return (x & 0xFFFF) / 65536

    def c_mps(self):
        return 331.3 + 0.606 * self.temp_c

    def trig(self, v):
        t = self.clk.us
        if v:
            self._hi = t
        elif self._hi is not None:
            self._armed = t - self._hi >= self.trig_us
            self._hi = None

    def pulse(self, pin, level, timeout_us):
        if not self._armed:
            return -1                               # no burst: ECHO never rises
        self._armed = False
        t = self.clk.us
        last, self._last = self._last, t
        c = self.c_mps()
        d = self.distance_mm
        if last is not None and t - last < self.cycle_us:
            left = int(4000 * d / c) - (t - last)   # the old burst's double bounce
            us = left if left > 0 else -1
        else:
            self.pings += 1
            if d < self.blind_mm or (self.second_p and self._u() < self.second_p):
                d *= 2                               # the second echo
            us = int(2000 * d / c) if d <= self.max_mm else self.no_echo_us
        if us < 0:
            return -1
        if us > timeout_us:
            self.clk.sleep_us(timeout_us)
            return -2
        self.clk.sleep_us(us)
        return us

