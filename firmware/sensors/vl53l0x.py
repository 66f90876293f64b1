"""VL53L0X time-of-flight distance sensor over I2C, single-shot ranging.

Follows ST's VL53L0X API (STSW-IMG005) as its user manual UM2039 lays it out (section 2.4
"Initialization flow" and 2.5 "Calibration flow"), with register names and addresses from
the API's vl53l0x_device.h and the datasheet (DS11555):
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
   0xB4); the default tuning settings (vl53l0x_tuning.h, TUNING below as (reg, value)
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
_SEQ_CONFIG = const(0x01)
_INT_CONFIG_GPIO = const(0x0A)
_INT_CLEAR = const(0x0B)
_INT_STATUS = const(0x13)
_RANGE_STATUS = const(0x14)
_RTN_LIMIT = const(0x44)
_MSRC_TIMEOUT = const(0x46)
_PRE_VCSEL = const(0x50)
_PRE_TIMEOUT = const(0x51)
_MSRC_CONTROL = const(0x60)
_FINAL_VCSEL = const(0x70)
_FINAL_TIMEOUT = const(0x71)
_GPIO_HV_MUX = const(0x84)
_I2C_MODE = const(0x88)
_EXTSUP_HV = const(0x89)
_STOP_VAR = const(0x91)
_SPAD_MAP = const(0xB0)
_MODEL_ID = const(0xC0)
_MODEL = const(0xEE)
_VALID = const(11)
_WEDGED = const(3)        # unusable reads in a row before a re-init

# ST API DefaultTuningSettings (vl53l0x_tuning.h): (register, value) pairs, 0xFF = page
TUNING = bytes((
    0xFF, 0x01, 0x00, 0x00, 0xFF, 0x00, 0x09, 0x00, 0x10, 0x00, 0x11, 0x00, 0x24, 0x01,
    0x25, 0xFF, 0x75, 0x00, 0xFF, 0x01, 0x4E, 0x2C, 0x48, 0x00, 0x30, 0x20, 0xFF, 0x00,
    0x30, 0x09, 0x54, 0x00, 0x31, 0x04, 0x32, 0x03, 0x40, 0x83, 0x46, 0x25, 0x60, 0x00,
    0x27, 0x00, 0x50, 0x06, 0x51, 0x00, 0x52, 0x96, 0x56, 0x08, 0x57, 0x30, 0x61, 0x00,
    0x62, 0x00, 0x64, 0x00, 0x65, 0x00, 0x66, 0xA0, 0xFF, 0x01, 0x22, 0x32, 0x47, 0x14,
    0x49, 0xFF, 0x4A, 0x00, 0xFF, 0x00, 0x7A, 0x0A, 0x7B, 0x00, 0x78, 0x21, 0xFF, 0x01,
    0x23, 0x34, 0x42, 0x00, 0x44, 0xFF, 0x45, 0x26, 0x46, 0x05, 0x40, 0x40, 0x0E, 0x06,
    0x20, 0x1A, 0x43, 0x40, 0xFF, 0x00, 0x34, 0x03, 0x35, 0x44, 0xFF, 0x01, 0x31, 0x04,
    0x4B, 0x09, 0x4C, 0x05, 0x4D, 0x04, 0xFF, 0x00, 0x44, 0x00, 0x45, 0x20, 0x47, 0x08,
    0x48, 0x28, 0x67, 0x00, 0x70, 0x04, 0x71, 0x01, 0x72, 0xFE, 0x76, 0x00, 0x77, 0x00,
    0xFF, 0x01, 0x0D, 0x01, 0xFF, 0x00, 0x80, 0x01, 0x01, 0xF8, 0xFF, 0x01, 0x8E, 0x01,
    0x00, 0x01, 0xFF, 0x00, 0x80, 0x00))
# the private page window around the stop variable and the NVM read (API: 0x80/0xFF/0x00)
_OPEN = b"\x80\x01\xff\x01\x00\x00"
_CLOSE = b"\x00\x01\xff\x00\x80\x00"
# VL53L0X_get_info_from_device, SPAD part: into NVM read mode, ask for word 0x6B
_NVM_IN = b"\xff\x06"
_NVM_ASK = b"\xff\x07\x81\x01\x80\x01\x94\x6b\x83\x00"
_NVM_OUT = b"\x81\x00\xff\x06"
_NVM_CLOSE = b"\xff\x01\x00\x01\xff\x00\x80\x00"
_SPAD_PREP = b"\xff\x01\x4f\x00\x4e\x2c\xff\x00\xb6\xb4"


def _macro_ns(pclks):
    """Macro period in ns for a VCSEL period in PCLKs (API VL53L0X_calc_macro_period_ps)."""
    return (2304 * pclks * 1655 + 500) // 1000


def _decode(v):
    """Encoded timeout register (LSByte * 2^MSByte + 1) -> MCLKs."""
    return ((v & 0xFF) << (v >> 8)) + 1


def _encode(mclks):
    if mclks <= 0:
        return 0
    m, e = mclks - 1, 0
    while m > 0xFF:
        m >>= 1
        e += 1
    return (e << 8) | (m & 0xFF)


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

    def _w16(self, reg, v):
        b = self._b2
        b[0], b[1] = v >> 8, v & 0xFF
        self.i2c.writeto_mem(self.addr, reg, b)

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
        """Probe, initialise and calibrate; True if the sensor answered correctly."""
        self.ok = False
        x = self.xshut
        if x is not None:
            x.value(1)
            self._sleep(2)          # tBOOT: 1.2 ms max after XSHUT rises
        try:
            if self._r(_MODEL_ID) != _MODEL or not self._data_init() or not self._static_init():
                return False
            if not self._budget(self.budget_us) or not self._ref_calibration():
                return False
        except OSError:
            return False
        self.ok = True
        self.bad = 0
        return True

    def _data_init(self):
        self._w(_EXTSUP_HV, self._r(_EXTSUP_HV) | 1)   # 2V8 I/O
        self._w(_I2C_MODE, 0)
        self._seq(_OPEN)
        self._stop = self._r(_STOP_VAR)
        self._seq(_CLOSE)
        self._w(_MSRC_CONTROL, self._r(_MSRC_CONTROL) | 0x12)
        self._w16(_RTN_LIMIT, 32)                       # 0.25 MCPS, 9.7 fixed point
        self._w(_SEQ_CONFIG, 0xFF)
        return True

    def _spad_info(self):
        """(count, aperture) of the reference SPADs from NVM, or None."""
        self._seq(_OPEN)
        self._seq(_NVM_IN)
        self._w(0x83, self._r(0x83) | 0x04)
        self._seq(_NVM_ASK)
        if not self._wait(0x83, 0xFF, True):
            return None
        self._w(0x83, 0x01)
        v = self._r(0x92)
        self._seq(_NVM_OUT)
        self._w(0x83, self._r(0x83) & ~0x04)
        self._seq(_NVM_CLOSE)
        return v & 0x7F, v >> 7

    def _static_init(self):
        info = self._spad_info()
        if info is None:
            return False
        count, aperture = info
        m = bytearray(6)
        self.i2c.readfrom_mem_into(self.addr, _SPAD_MAP, m)
        self._seq(_SPAD_PREP)
        first = 12 if aperture else 0       # aperture SPADs start at 12
        n = 0
        for i in range(48):
            bit = 1 << (i & 7)
            if i < first or n == count:
                m[i >> 3] &= ~bit
            elif m[i >> 3] & bit:
                n += 1
        self.i2c.writeto_mem(self.addr, _SPAD_MAP, m)
        self._seq(TUNING)
        self._w(_INT_CONFIG_GPIO, 0x04)                 # interrupt on new sample
        self._w(_GPIO_HV_MUX, self._r(_GPIO_HV_MUX) & ~0x10)   # active low
        self._w(_INT_CLEAR, 1)
        self._w(_SEQ_CONFIG, 0xE8)
        return True

    def _budget(self, budget_us):
        """API SetMeasurementTimingBudget for steps DSS + pre-range + final range."""
        pre_p = (self._r(_PRE_VCSEL) + 1) << 1
        fin_p = (self._r(_FINAL_VCSEL) + 1) << 1
        pre_ns, fin_ns = _macro_ns(pre_p), _macro_ns(fin_p)
        msrc_us = ((self._r(_MSRC_TIMEOUT) + 1) * pre_ns + 500) // 1000
        pre_mclks = _decode(self._r16(_PRE_TIMEOUT))
        pre_us = (pre_mclks * pre_ns + 500) // 1000
        used = 1910 + 960 + 2 * (msrc_us + 690) + pre_us + 660 + 550
        if budget_us < 20000 or used >= budget_us:
            return False
        fin_mclks = ((budget_us - used) * 1000 + fin_ns // 2) // fin_ns + pre_mclks
        self._w16(_FINAL_TIMEOUT, _encode(fin_mclks))
        return True

    def _single_cal(self, seq, start):
        self._w(_SEQ_CONFIG, seq)
        self._w(_SYSRANGE_START, start)
        ok = self._wait(_INT_STATUS, 0x07, True)
        self._w(_INT_CLEAR, 1)
        self._w(_SYSRANGE_START, 0)
        return ok

    def _ref_calibration(self):
        ok = self._single_cal(0x01, 0x41) and self._single_cal(0x02, 0x01)   # VHV, phase
        self._w(_SEQ_CONFIG, 0xE8)
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
