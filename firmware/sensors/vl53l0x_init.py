"""The VL53L0X's one-time initialisation, ST API order (see firmware/sensors/vl53l0x.py for
the references): DataInit, StaticInit (NVM SPADs, tuning), timing budget, VHV + phase
calibration. VL53L0X.setup() imports it, runs run(driver) and drops it, so its code and
TUNING stay out of RAM between (re-)initialisations.
"""
from firmware.compat import const
from firmware.sensors.vl53l0x import _CLOSE, _OPEN

_SYSRANGE_START = const(0x00)
_SEQ_CONFIG = const(0x01)
_INT_CONFIG_GPIO = const(0x0A)
_INT_CLEAR = const(0x0B)
_INT_STATUS = const(0x13)
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


def _w16(d, reg, v):
    b = d._b2
    b[0], b[1] = v >> 8, v & 0xFF
    d.i2c.writeto_mem(d.addr, reg, b)


def run(d):
    """Initialise and calibrate driver d's sensor; False if it answered wrongly (OSError
    if it did not answer)."""
    return (d._r(_MODEL_ID) == _MODEL and _data_init(d) and _static_init(d)
            and _budget(d, d.budget_us) and _ref_calibration(d))


def _data_init(d):
    d._w(_EXTSUP_HV, d._r(_EXTSUP_HV) | 1)   # 2V8 I/O
    d._w(_I2C_MODE, 0)
    d._seq(_OPEN)
    d._stop = d._r(_STOP_VAR)
    d._seq(_CLOSE)
    d._w(_MSRC_CONTROL, d._r(_MSRC_CONTROL) | 0x12)
    _w16(d, _RTN_LIMIT, 32)                       # 0.25 MCPS, 9.7 fixed point
    d._w(_SEQ_CONFIG, 0xFF)
    return True

def _spad_info(d):
    """(count, aperture) of the reference SPADs from NVM, or None."""
    d._seq(_OPEN)
    d._seq(_NVM_IN)
    d._w(0x83, d._r(0x83) | 0x04)
    d._seq(_NVM_ASK)
    if not d._wait(0x83, 0xFF, True):
        return None
    d._w(0x83, 0x01)
    v = d._r(0x92)
    d._seq(_NVM_OUT)
    d._w(0x83, d._r(0x83) & ~0x04)
    d._seq(_NVM_CLOSE)
    return v & 0x7F, v >> 7

def _static_init(d):
    info = _spad_info(d)
    if info is None:
        return False
    count, aperture = info
    m = bytearray(6)
    d.i2c.readfrom_mem_into(d.addr, _SPAD_MAP, m)
    d._seq(_SPAD_PREP)
    first = 12 if aperture else 0       # aperture SPADs start at 12
    n = 0
    for i in range(48):
        bit = 1 << (i & 7)
        if i < first or n == count:
            m[i >> 3] &= ~bit
        elif m[i >> 3] & bit:
            n += 1
    d.i2c.writeto_mem(d.addr, _SPAD_MAP, m)
    d._seq(TUNING)
    d._w(_INT_CONFIG_GPIO, 0x04)                 # interrupt on new sample
    d._w(_GPIO_HV_MUX, d._r(_GPIO_HV_MUX) & ~0x10)   # active low
    d._w(_INT_CLEAR, 1)
    d._w(_SEQ_CONFIG, 0xE8)
    return True

def _budget(d, budget_us):
    """API SetMeasurementTimingBudget for steps DSS + pre-range + final range."""
    pre_p = (d._r(_PRE_VCSEL) + 1) << 1
    fin_p = (d._r(_FINAL_VCSEL) + 1) << 1
    pre_ns, fin_ns = _macro_ns(pre_p), _macro_ns(fin_p)
    msrc_us = ((d._r(_MSRC_TIMEOUT) + 1) * pre_ns + 500) // 1000
    pre_mclks = _decode(d._r16(_PRE_TIMEOUT))
    pre_us = (pre_mclks * pre_ns + 500) // 1000
    used = 1910 + 960 + 2 * (msrc_us + 690) + pre_us + 660 + 550
    if budget_us < 20000 or used >= budget_us:
        return False
    fin_mclks = ((budget_us - used) * 1000 + fin_ns // 2) // fin_ns + pre_mclks
    _w16(d, _FINAL_TIMEOUT, _encode(fin_mclks))
    return True

def _single_cal(d, seq, start):
    d._w(_SEQ_CONFIG, seq)
    d._w(_SYSRANGE_START, start)
    ok = d._wait(_INT_STATUS, 0x07, True)
    d._w(_INT_CLEAR, 1)
    d._w(_SYSRANGE_START, 0)
    return ok

def _ref_calibration(d):
    ok = _single_cal(d, 0x01, 0x41) and _single_cal(d, 0x02, 0x01)   # VHV, phase
    d._w(_SEQ_CONFIG, 0xE8)
    return ok
