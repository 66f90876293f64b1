"""Ultrasonic distance: HC-SR04 and the waterproof JSN-SR04T (same trigger/echo
protocol; the JSN has a ~200 mm blind zone and wants a longer trigger).

A >= 10 us high pulse on TRIG sends a burst; ECHO stays high for the round trip.
Distance = echo_us * c / 2, with c = 331.3 + 0.606 * T m/s (T in deg C, 20 deg C
when unknown). time_pulse_us returns -1 (no pulse started) or -2 (pulse never
ended) on timeout: both mean no echo, so read() gives None, never raises.
read() gives the median of `samples` pings, in mm, or None if none was valid.
"""

from firmware.sensors import insort


class Ultrasonic:
    def __init__(self, trig, echo, pulse_us, sleep_us=None, sleep_ms=None, temp_c=None,
                 timeout_us=30000, samples=3, min_mm=20, max_mm=4000, trig_us=10,
                 gap_ms=60, offset_mm=0):
        import time
        self.trig, self.echo = trig, echo
        self._pulse = pulse_us
        self._sus = sleep_us or time.sleep_us
        self._sms = sleep_ms or time.sleep_ms
        self.temp_c = temp_c
        self.timeout_us, self.trig_us, self.gap_ms = timeout_us, trig_us, gap_ms
        self.min_mm, self.max_mm, self.offset_mm = min_mm, max_mm, offset_mm
        self._buf = [0.0] * samples

    def setup(self):
        self.trig.value(0)

    def sound_mps(self):
        t = 20.0 if self.temp_c is None else self.temp_c
        return 331.3 + 0.606 * t

    def ping_mm(self):
        """One measurement in mm, or None (no echo, out of range, bus error)."""
        tr = self.trig
        tr.value(0)
        self._sus(2)
        tr.value(1)
        self._sus(self.trig_us)
        tr.value(0)
        try:
            us = self._pulse(self.echo, 1, self.timeout_us)
        except OSError:
            return None
        if us < 0:
            return None
        mm = us * self.sound_mps() / 2000 + self.offset_mm   # m/s * us / 2 -> mm
        if mm < self.min_mm or mm > self.max_mm:
            return None
        return mm

    def read(self):
        b = self._buf
        k = 0
        for n in range(len(b)):
            if n:
                self._sms(self.gap_ms)   # let the previous burst's echoes die out
            r = self.ping_mm()
            if r is None:
                continue
            k = insort(b, k, r)
        if not k:
            return None
        return b[k // 2] if k & 1 else (b[k // 2 - 1] + b[k // 2]) / 2


def create(s):
    """From a board "sensor" section: pins {trig, echo}; model "hc-sr04"|"jsn-sr04t"."""
    from firmware import hal
    p, c = s["pins"], s.get("calibration", {})
    jsn = s.get("model") == "jsn-sr04t"
    return Ultrasonic(hal.Pin(p["trig"], hal.Pin.OUT, value=0), hal.Pin(p["echo"], hal.Pin.IN),
                      hal.time_pulse_us, hal.sleep_us, hal.sleep_ms, s.get("temp_c"),
                      s.get("timeout_us", 30000), s.get("samples", 3),
                      s.get("min_mm", 200 if jsn else 20), s.get("max_mm", 6000 if jsn else 4000),
                      s.get("trig_us", 20 if jsn else 10), s.get("gap_ms", 60), c.get("offset_mm", 0))
