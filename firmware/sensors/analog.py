"""Analog level input on the ESP32 ADC (e.g. a 0.5-4.5 V pressure transmitter
through a divider, a float potentiometer, a capacitive probe).

The attenuation (board file "atten": 0/2.5/6/11 dB) sets the input range; read_uv()
uses the chip's eFuse calibration, so the two-point calibration only has to
map microvolts to the sensor unit: calibration {"uv": [u0, u1], "value": [v0, v1]}.
Readings outside "valid_uv" [lo, hi] mean a disconnected or shorted sensor
(a 0.5-4.5 V transmitter never outputs 0 V): read() gives None.
"""


class Analog:
    def __init__(self, adc, uv=(0, 3100000), value=(0.0, 100.0), valid_uv=None, samples=8):
        self.adc = adc
        self.samples = samples
        self.valid_uv = valid_uv
        self.set_points(uv, value)

    def set_points(self, uv, value):
        """Two-point calibration: microvolts uv[i] read as value[i]."""
        if uv[1] == uv[0]:
            raise ValueError("calibration points must differ")
        self._k = (value[1] - value[0]) / (uv[1] - uv[0])
        self._u0, self._v0 = uv[0], value[0]

    def setup(self):
        pass

    def read_uv(self):
        """Mean of `samples` conversions in microvolts, or None on an ADC error."""
        s = 0
        try:
            for _ in range(self.samples):
                s += self.adc.read_uv()
        except OSError:
            return None
        return s // self.samples

    def read(self):
        u = self.read_uv()
        if u is None:
            return None
        v = self.valid_uv
        if v and (u < v[0] or u > v[1]):
            return None
        return self._v0 + (u - self._u0) * self._k


def create(s):
    """From a board "sensor" section: pins {adc}, atten, calibration {uv, value}, valid_uv."""
    from firmware import hal
    c = s.get("calibration", {})
    return Analog(hal.ADC(s["pins"]["adc"], s.get("atten", 11)), c.get("uv", (0, 3100000)),
                  c.get("value", (0.0, 100.0)), s.get("valid_uv"), s.get("samples", 8))
