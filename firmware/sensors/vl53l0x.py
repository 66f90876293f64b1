"""VL53L0X time-of-flight distance sensor over I2C, single-shot ranging.

Follows ST's VL53L0X API (STSW-IMG005) as its user manual UM2039 lays it out (section 2.4
"Initialization flow" and 2.5 "Calibration flow"), with register names and addresses from
the API's vl53l0x_device.h and the datasheet (DS11555); steps 1-4 are in
firmware/sensors/vl53l0x_init.py, loaded for an (re-)initialisation and dropped after:
1. VL53L0X_DataInit: IDENTIFICATION_MODEL_ID (0xC0) must read 0xEE; 2V8 I/O
   (VHV_CONFIG_PAD_SCL_SDA__EXTSUP_HV 0x89 bit 0); standard I2C (0x88 = 0); the "stop
   variable" read from 0x91 through the private page window (0x80/0xFF/0x00), restored
   before every start; MSRC_CONFIG_CONTROL (0x60) |= 0x12 (signal-rate MSRC and pre-range
   limit checks off); FINAL_RANGE_CONFIG_MIN_COUNT_RATE_RTN_LIMIT (0x44) = 0.25 MCPS in
   9.7 fixed point; SYSTEM_SEQUENCE_CONFIG (0x01) = 0xFF.
2. VL53L0X_StaticInit: the reference SPAD count and type from NVM (the API's
   VL53L0X_get_info_from_device: 0x94 = 0x6B, poll 0x83, read 0x92), then the reference
   SPAD map GLOBAL_CONFIG_SPAD_ENABLES_REF_0..5 (0xB0-0xB5) rewritten to enable exactly
   that many, starting at SPAD 12 for aperture SPADs (DYNAMIC_SPAD_* 0x4E/0x4F, 0xB6 =
   0xB4); the default tuning settings (vl53l0x_tuning.h, vl53l0x_init.TUNING, (reg, value)
   byte pairs); GPIO interrupt on new sample (0x0A = 4, 0x84 bit 4 clear: active low);
   SYSTEM_SEQUENCE_CONFIG = 0xE8 (DSS, pre-range, final range; TCC and MSRC off).
3. VL53L0X_SetMeasurementTimingBudgetMicroSeconds: the board file's "budget_us" (default
   33000, the API's; UM2039 table 10 gives 200 ms for "high accuracy", fine for a level
   that changes over hours) becomes FINAL_RANGE_CONFIG_TIMEOUT_MACROP (0x71) from the
   VCSEL periods (0x50, 0x70) and the MSRC/pre-range timeouts (0x46, 0x51) as the API does.
4. VL53L0X_PerformRefCalibration: VHV (SYSTEM_SEQUENCE_CONFIG 0x01, SYSRANGE_START 0x41)
   then phase (0x02, 0x01) calibration, then 0xE8 back.
read(): SYSRANGE_START (0x00) = 1, bit 0 clears once started, RESULT_INTERRUPT_STATUS
(0x13) & 7 when done, RESULT_RANGE_STATUS (0x14) bits 6:3 is the device range status,
range mm big-endian at 0x1E, SYSTEM_INTERRUPT_CLEAR (0x0B) = 1. Only status 11 ("range
complete") is a range: the API maps 6/9 to phase fail, 8/10 to min-range fail, 4 to
signal fail, 1-3 to hardware fail; 8190/8191 mm is "no target". Three unusable reads in a
row mean a wedged sensor: the next read re-initialises it, first cycling XSHUT (board
pins "xshut") when the board has one, as only that resets a hung ranging core.
sleep(): XSHUT low (hardware standby, registers lost) when there is one; between single
shots the sensor already sits in software standby.
Left out: offset and cross-talk calibration (the board file's offset_mm is applied instead:
the cover glass and mounting are fixed per board), continuous mode, the signal-rate and
sigma limit checks beyond the API defaults, temperature recalibration (VHV is rerun at
every re-init).
"""
from firmware.compat import const

_SYSRANGE_START = const(0x00)
_INT_CLEAR = const(0x0B)
_INT_STATUS = const(0x13)
_RANGE_STATUS = const(0x14)
_STOP_VAR = const(0x91)
_VALID = const(11)
_WEDGED = const(3)        # unusable reads in a row before a re-init

# the private page window around the stop variable (API: 0x80/0xFF/0x00)
_OPEN = b"\x80\x01\xff\x01\x00\x00"
_CLOSE = b"\x00\x01\xff\x00\x80\x00"


def _init_module():
    """firmware/sensors/vl53l0x_init.py, imported and at once unlinked from sys.modules and
    its package (also the package itself if main.py had freed it after boot), so its code
    is freed as soon as the caller is done with it."""
    import sys
    pkg, name = "firmware.sensors", "firmware.sensors.vl53l0x_init"
    had = pkg in sys.modules
    __import__(name)
    m = sys.modules.pop(name)
    p = sys.modules[pkg]
    if "vl53l0x_init" in p.__dict__:
        delattr(p, "vl53l0x_init")
    if not had:
        sys.modules.pop(pkg)
        import firmware
        if "sensors" in firmware.__dict__:
            delattr(firmware, "sensors")
    return m


class VL53L0X:
    def __init__(self, i2c, addr=0x29, offset_mm=0, timeout_ms=100, ticks_ms=None,
                 ticks_diff=None, sleep_ms=None, budget_us=33000, xshut=None):
        import time
        self.i2c, self.addr = i2c, addr
        self.offset_mm = offset_mm
        self.timeout_ms = timeout_ms
        self.budget_us = budget_us
        self.xshut = xshut
        self._ticks = ticks_ms or time.ticks_ms
        self._diff = ticks_diff or time.ticks_diff
        self._sleep = sleep_ms or time.sleep_ms
        self._b1 = bytearray(1)     # reused buffers: no allocation per reading
        self._b2 = bytearray(2)
        self._stop = 0
        self.ok = False
        self.bad = 0                # unusable reads in a row
        self.status = None          # the last device range status

    def _w(self, reg, v):
        self._b1[0] = v
        self.i2c.writeto_mem(self.addr, reg, self._b1)

    def _r(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._b1)
        return self._b1[0]

    def _r16(self, reg):
        b = self._b2
        self.i2c.readfrom_mem_into(self.addr, reg, b)
        return (b[0] << 8) | b[1]

    def _seq(self, pairs):
        for i in range(0, len(pairs), 2):
            self._w(pairs[i], pairs[i + 1])

    def _wait(self, reg, mask, want_set):
        t0 = self._ticks()
        while bool(self._r(reg) & mask) != want_set:
            if self._diff(self._ticks(), t0) > self.timeout_ms:
                return False
            self._sleep(1)
        return True

    # ---- initialisation (UM2039 2.4) ------------------------------------------
    def setup(self):
        """Probe, initialise and calibrate; True if the sensor answered correctly. The code
        runs once (and after a wedge): firmware/sensors/vl53l0x_init.py, dropped after use."""
        self.ok = False
        x = self.xshut
        if x is not None:
            x.value(1)
            self._sleep(2)          # tBOOT: 1.2 ms max after XSHUT rises
        ok = False
        try:
            ok = _init_module().run(self)
        except OSError:
            pass
        self.ok = ok
        if ok:
            self.bad = 0
        return ok

    # ---- ranging --------------------------------------------------------------
    def _failed(self):
        self.bad += 1
        if self.bad >= _WEDGED:
            self.ok = False
            x = self.xshut
            if x is not None:
                x.value(0)          # hardware standby: the only reset of a hung core
        return None

    def read(self):
        if not self.ok and not self.setup():   # also recovers a re-plugged sensor
            return None
        try:
            self._seq(_OPEN)
            self._w(_STOP_VAR, self._stop)
            self._seq(_CLOSE)
            self._w(_SYSRANGE_START, 1)
            if not self._wait(_SYSRANGE_START, 1, False) or not self._wait(_INT_STATUS, 0x07, True):
                return self._failed()
            self.status = st = (self._r(_RANGE_STATUS) >> 3) & 0x0F
            mm = self._r16(_RANGE_STATUS + 10)
            self._w(_INT_CLEAR, 1)
        except OSError:
            self.ok = False
            return None
        if mm >= 8190:
            self.bad = 0
            return None             # no target: a real answer, not a fault of the sensor
        if st != _VALID:
            return self._failed()
        self.bad = 0
        return mm + self.offset_mm

    def sleep(self):
        """Lowest power: XSHUT low (hardware standby) when the board wires it."""
        x = self.xshut
        if x is not None:
            x.value(0)
            self.ok = False


def create(s):
    """From a board "sensor" section: pins {sda, scl, xshut?}, i2c bus, addr, freq,
    timeout_ms, budget_us, calibration {offset_mm}."""
    from firmware import hal
    p, c = s["pins"], s.get("calibration", {})
    bus = hal.I2C(s.get("i2c", 0), scl=p["scl"], sda=p["sda"], freq=s.get("freq", 400000))
    x = p.get("xshut")
    return VL53L0X(bus, s.get("addr", 0x29), c.get("offset_mm", 0), s.get("timeout_ms", 100),
                   hal.ticks_ms, hal.ticks_diff, hal.sleep_ms, s.get("budget_us", 33000),
                   None if x is None else hal.Pin(x, hal.Pin.OUT, value=1))
