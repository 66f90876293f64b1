"""VL53L0X time-of-flight distance sensor over I2C: a minimal single-shot driver.

Register facts from the datasheet / ST API: model id at 0xC0 reads 0xEE; writing
0x01 to SYSRANGE_START (0x00) starts a single-shot measurement, bit 0 clears when
it has started; RESULT_INTERRUPT_STATUS (0x13) & 0x07 != 0 when a result is ready;
the range in mm is big-endian at RESULT_RANGE_STATUS + 10 (0x1E); writing 0x01 to
SYSTEM_INTERRUPT_CLEAR (0x0B) re-arms. 8190/8191 mean "no target / out of range".
Each start must restore the "stop variable" read from 0x91 at init (ST API does
the same around the 0x80/0xFF/0x00 page-select writes).

Skipped on purpose (not needed for a level that changes over hours, offset comes
from the board file): SPAD and reference calibration, timing budget tuning.
read() gives mm (+ calibration offset) or None: no ack (OSError), timeout,
out of range, or a range status reporting hardware failure / no target.
"""
from firmware.compat import const

_SYSRANGE_START = const(0x00)
_INT_CONFIG_GPIO = const(0x0A)
_INT_CLEAR = const(0x0B)
_INT_STATUS = const(0x13)
_RANGE_STATUS = const(0x14)
_MODEL_ID = const(0xC0)
_GPIO_HV_MUX = const(0x84)
_STOP_VAR = const(0x91)
_EXTSUP_HV = const(0x89)
_MODEL = const(0xEE)
_I2C_MODE = const(0x88)
RANGE_MM = (30, 1200)   # default mode, ST datasheet DS11555: up to 1.2 m indoors


class VL53L0X:
    def __init__(self, i2c, addr=0x29, offset_mm=0, timeout_ms=100, ticks_ms=None,
                 ticks_diff=None, sleep_ms=None):
        import time
        self.i2c, self.addr = i2c, addr
        self.offset_mm = offset_mm
        self.timeout_ms = timeout_ms
        self._ticks = ticks_ms or time.ticks_ms
        self._diff = ticks_diff or time.ticks_diff
        self._sleep = sleep_ms or time.sleep_ms
        self._b1 = bytearray(1)     # reused buffers: no allocation per reading
        self._b2 = bytearray(2)
        self._stop = 0
        self.ok = False

    def _w(self, reg, v):
        self._b1[0] = v
        self.i2c.writeto_mem(self.addr, reg, self._b1)

    def _r(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._b1)
        return self._b1[0]

    def _page(self, on):
        # ST API's private-page window, used to read/restore the stop variable
        if on:
            self._w(0x80, 1)
            self._w(0xFF, 1)
            self._w(0x00, 0)
        else:
            self._w(0x00, 1)
            self._w(0xFF, 0)
            self._w(0x80, 0)

    def setup(self):
        """Probe and initialise; returns True if the sensor answered correctly."""
        self.ok = False
        try:
            if self._r(_MODEL_ID) != _MODEL:
                return False
            self._w(_EXTSUP_HV, self._r(_EXTSUP_HV) | 1)   # 2V8 I/O
            self._w(_I2C_MODE, 0)                           # standard I2C mode
            self._page(True)
            self._stop = self._r(_STOP_VAR)
            self._page(False)
            self._w(_INT_CONFIG_GPIO, 0x04)                 # interrupt on new sample
            self._w(_GPIO_HV_MUX, self._r(_GPIO_HV_MUX) & ~0x10)  # active low
            self._w(_INT_CLEAR, 1)
        except OSError:
            return False
        self.ok = True
        return True

    def _wait(self, reg, mask, want_set):
        t0 = self._ticks()
        while bool(self._r(reg) & mask) != want_set:
            if self._diff(self._ticks(), t0) > self.timeout_ms:
                return False
            self._sleep(1)
        return True

    def read(self):
        if not self.ok and not self.setup():   # also recovers a re-plugged sensor
            return None
        try:
            self._page(True)
            self._w(_STOP_VAR, self._stop)
            self._page(False)
            self._w(_SYSRANGE_START, 1)
            if not self._wait(_SYSRANGE_START, 1, False):
                return None
            if not self._wait(_INT_STATUS, 0x07, True):
                return None
            status = (self._r(_RANGE_STATUS) >> 3) & 0x0F
            self.i2c.readfrom_mem_into(self.addr, _RANGE_STATUS + 10, self._b2)
            self._w(_INT_CLEAR, 1)
        except OSError:
            self.ok = False
            return None
        mm = (self._b2[0] << 8) | self._b2[1]
        if mm >= 8190 or 1 <= status <= 5:
            return None
        return mm + self.offset_mm


def create(s):
    """From a board "sensor" section: pins {sda, scl}, i2c bus, addr, calibration {offset_mm}."""
    from firmware import hal
    p, c = s["pins"], s.get("calibration", {})
    bus = hal.I2C(s.get("i2c", 0), scl=p["scl"], sda=p["sda"], freq=s.get("freq", 400000))
    return VL53L0X(bus, s.get("addr", 0x29), c.get("offset_mm", 0), s.get("timeout_ms", 100),
                   hal.ticks_ms, hal.ticks_diff, hal.sleep_ms)
