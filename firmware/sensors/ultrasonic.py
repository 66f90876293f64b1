"""Ultrasonic distance: HC-SR04 and the waterproof JSN-SR04T (same trigger/echo protocol).

Follows the HC-SR04 user's manual (Elecfreaks: "Timing diagram": a >= 10 us TRIG pulse
sends eight 40 kHz cycles, ECHO is high for the round trip; "over 60 ms measurement
cycle" so a ping never hears the previous one's echoes) and the JSN-SR04T module's
datasheet (mode 1, pulse output: blind zone 25 cm, farthest 4.5 m, TRIG >= 10 us, 20 us
for stable readings on v2/v3 boards; ECHO falls after ~60 ms when no echo came back).
MODELS holds each module's blind zone, range and trigger width; a board file's
min_mm/max_mm can narrow the window, never widen it (firmware/boardcheck.py also refuses
a geometry whose full or empty level lies outside it: inside the blind zone the JSN reports
the second echo, twice the distance, a plausible but wrong level no driver can detect).

Distance = echo_us * c / 2, with c = 331.3 + 0.606 * T m/s (the linear fit of the speed of
sound in dry air, T in deg C): from `temp` (a function returning deg C or None, e.g. a
DS18B20 driver's read), else the board file's temp_c, else 20 deg C; 15 deg C off at
800 mm is 14 mm. time_pulse_us returns -1 (no pulse started) or -2 (pulse never ended)
on timeout: both mean no echo. read() gives the (lower) median of `samples` pings, each
`gap_ms` after the last (at least the 60 ms cycle), in mm, or None if none was valid: a
double bounce inside a drum (the echo at twice the distance) in a minority of pings is
outvoted, and with an even count the shorter middle one is taken (stray echoes are late).
Left out: the JSN's UART modes (2-6, a resistor on the board): pulse mode needs no
parser and works with both modules.
"""

from firmware.sensors import insort

# model -> (blind zone mm, farthest mm, TRIG pulse us)
MODELS = {"hc-sr04": (20, 4000, 10), "jsn-sr04t": (250, 4500, 20)}
_CYCLE_MS = 60


class Ultrasonic:
    def __init__(self, trig, echo, pulse_us, sleep_us=None, sleep_ms=None, temp_c=None,
                 timeout_us=30000, samples=3, min_mm=20, max_mm=4000, trig_us=10,
                 gap_ms=_CYCLE_MS, offset_mm=0, temp=None):
        import time
        self.trig, self.echo = trig, echo
        self._pulse = pulse_us
        self._sus = sleep_us or time.sleep_us
        self._sms = sleep_ms or time.sleep_ms
        self.temp_c = temp_c
        self._temp = temp
        self.timeout_us, self.trig_us, self.gap_ms = timeout_us, trig_us, gap_ms
        self.min_mm, self.max_mm, self.offset_mm = min_mm, max_mm, offset_mm
        self._buf = [0.0] * samples
        self._c = self.sound_mps()

    def setup(self):
        self.trig.value(0)

    def sound_mps(self):
        t = None
        if self._temp is not None:
            try:
                t = self._temp()
            except (OSError, ValueError):
                t = None
        if t is None:
            t = self.temp_c
        if t is None:
            t = 20.0
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
        mm = us * self._c / 2000 + self.offset_mm   # m/s * us / 2 -> mm
        if mm < self.min_mm or mm > self.max_mm:
            return None
        return mm

    def read(self):
        self._c = self.sound_mps()      # once per reading: a sensor read is not free
        b = self._buf
        k = 0
        for _ in range(len(b)):
            self._sms(self.gap_ms)   # let the previous burst's echoes die out (also the last read's)
            r = self.ping_mm()
            if r is None:
                continue
            k = insort(b, k, r)
        if not k:
            return None
        return b[(k - 1) // 2]   # the lower median: stray echoes are always late (longer)


def create(s, temp=None):
    """From a board "sensor" section: pins {trig, echo}; model "hc-sr04"|"jsn-sr04t";
    min_mm/max_mm inside the model's window; temp_c; samples, gap_ms, timeout_us."""
    from firmware import hal
    p, c = s["pins"], s.get("calibration", {})
    lo, hi, tus = MODELS[s.get("model", "hc-sr04")]
    return Ultrasonic(hal.Pin(p["trig"], hal.Pin.OUT, value=0), hal.Pin(p["echo"], hal.Pin.IN),
                      hal.time_pulse_us, hal.sleep_us, hal.sleep_ms, s.get("temp_c"),
                      s.get("timeout_us", 30000), s.get("samples", 3),
                      max(lo, s.get("min_mm", lo)), min(hi, s.get("max_mm", hi)),
                      max(tus, s.get("trig_us", tus)), max(_CYCLE_MS, s.get("gap_ms", _CYCLE_MS)),
                      c.get("offset_mm", 0), temp)
