"""Analog level input on the ESP32 ADC (e.g. a 0.5-4.5 V pressure transmitter
through a divider, a float potentiometer, a capacitive probe).

The attenuation (board file "atten": 0/2.5/6/11 dB) sets the input range. read_uv()
uses the chip's eFuse calibration, so the two-point calibration only has to map
microvolts to the sensor unit: calibration {"uv": [u0, u1], "value": [v0, v1]}.
The SAR ADC is only linear inside a window per attenuation (LINEAR below): on an ESP32,
MicroPython's machine.ADC docs (ESP32 quick reference) and ESP-IDF's ADC page give
100-950 / 100-1250 / 150-1750 / 150-2450 mV for 0 / 2.5 / 6 / 11 dB, inputs <= ~100 mV
read 0 and the top bends over; ESP-IDF v4.4 gives 0-750 / 1050 / 1300 / 2500 mV on the
ESP32-C3 and 0-950 / 1250 / 1750 / 3100 mV on the ESP32-S3. A calibration point outside
the window is refused (ValueError), and so is a reading outside it (None), because there
the microvolts no longer mean what the calibration says. Readings outside "valid_uv"
[lo, hi] mean a disconnected or shorted sensor (a 0.5-4.5 V transmitter never outputs
0 V): None too.
Left out: the raw read_u16() path (uncalibrated) and ADC2 (unusable while Wi-Fi runs;
firmware/boardcheck.py only allows ADC1 pins).
"""

# mcu -> ((atten dB, lo uV, hi uV), ...): the linear window of read_uv()
LINEAR = {
    "esp32": ((0, 100000, 950000), (2.5, 100000, 1250000), (6, 150000, 1750000),
              (11, 150000, 2450000)),
    "esp32c3": ((0, 0, 750000), (2.5, 0, 1050000), (6, 0, 1300000), (11, 0, 2500000)),
    "esp32s3": ((0, 0, 950000), (2.5, 0, 1250000), (6, 0, 1750000), (11, 0, 3100000)),
}


def linear_uv(mcu, atten):
    """(lo, hi) microvolts where read_uv() is linear; ValueError for an unknown pair."""
    for a, lo, hi in LINEAR.get(mcu, LINEAR["esp32"]):
        if a == atten:
            return lo, hi
    raise ValueError("ADC attenuation must be 0, 2.5, 6 or 11 dB, not %r" % (atten,))


def this_mcu():
    """The chip MicroPython runs on ("esp32", "esp32c3", "esp32s3"); the simulated HAL
    models an ESP32."""
    import sys
    m = getattr(sys.implementation, "_machine", "")
    return "esp32c3" if "ESP32C3" in m else "esp32s3" if "ESP32S3" in m else "esp32"


class Analog:
    def __init__(self, adc, uv=(150000, 2450000), value=(0.0, 100.0), valid_uv=None, samples=8,
                 linear=(150000, 2450000)):
        self.adc = adc
        self.samples = samples
        self.valid_uv = valid_uv
        self.linear = linear
        self.set_points(uv, value)

    def set_points(self, uv, value):
        """Two-point calibration: microvolts uv[i] read as value[i], both inside the
        ADC's linear window."""
        if uv[1] == uv[0]:
            raise ValueError("calibration points must differ")
        lo, hi = self.linear
        for u in uv:
            if not lo <= u <= hi:
                raise ValueError("calibration point %d uV is outside the ADC's linear range %d-%d uV"
                                 % (u, lo, hi))
        self._u0, self._du = uv[0], uv[1] - uv[0]
        self._v0, self._dv = value[0], value[1] - value[0]

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
        lo, hi = self.linear
        if u < lo or u > hi:
            return None
        return self._v0 + (u - self._u0) / self._du * self._dv


def create(s):
    """From a board "sensor" section: pins {adc}, atten, calibration {uv, value}, valid_uv."""
    from firmware import hal
    c = s.get("calibration", {})
    at = s.get("atten", 11)
    lin = linear_uv(this_mcu(), at)
    return Analog(hal.ADC(s["pins"]["adc"], at), c.get("uv", lin), c.get("value", (0.0, 100.0)),
                  s.get("valid_uv"), s.get("samples", 8), lin)
