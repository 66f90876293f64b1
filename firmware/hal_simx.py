"""The rarely used part of the simulated HAL (see firmware/hal_sim.py): ADC, I2C, UART,
RTC, pulse timing, irq and unique_id, with the module state tests drive (set_adc,
attach_i2c, set_pulse_source). Loaded on first use through hal_sim.__getattr__."""
import time

_adc_uv = {}      # pin id -> microvolts
_i2c_devs = {}    # address -> object with readfrom_mem_into/writeto_mem
_pulse = None     # callable(pin, level, timeout_us) -> us or -1/-2


class ADC:
    """An ESP32's ADC1 as read_uv() shows it: linear inside the window MicroPython's ESP32
    docs give per attenuation (firmware/sensors/analog.py LINEAR), 0 at or below ~100 mV,
    and bending over above the window up to where the 12-bit code saturates."""
    # atten dB -> (linear lo, linear hi, saturation) in uV
    _R = {0: (100000, 950000, 1050000), 2.5: (100000, 1250000, 1400000),
          6: (150000, 1750000, 1950000), 11: (150000, 2450000, 2800000)}
    _FS = {0: 950000, 2.5: 1250000, 6: 1750000, 11: 3100000}

    def __init__(self, pin, atten=11):
        self.pin = pin
        self.atten = atten
        self._r = self._R[atten]    # KeyError for an attenuation the chip does not have

    def read_uv(self):
        u = _adc_uv.get(self.pin, 0)
        lo, hi, top = self._r
        if u <= 100000:
            return 0
        if u < lo:                  # the foot: reads low
            return lo - (lo - u) * 2
        if u > hi:                  # the knee: half the slope, then the code saturates
            return min(hi + (u - hi) // 2, top)
        return u

    def read_u16(self):
        """The raw code, scaled to 16 bits: full scale about 0.95/1.25/1.75/3.1 V."""
        fs = self._FS[self.atten]
        return min(_adc_uv.get(self.pin, 0), fs) * 65535 // fs


def set_adc(pin_id, uv):
    _adc_uv[pin_id] = uv


class I2C:
    def __init__(self, id=0, scl=None, sda=None, freq=400000):
        self.id = id

    def scan(self):
        return sorted(_i2c_devs)

    def _dev(self, addr):
        d = _i2c_devs.get(addr)
        if d is None:
            raise OSError(19)   # ENODEV: nobody acked the address, as on a board
        return d

    def readfrom_mem_into(self, addr, reg, buf):
        self._dev(addr).readfrom_mem_into(addr, reg, buf)

    def writeto_mem(self, addr, reg, buf):
        self._dev(addr).writeto_mem(addr, reg, buf)


def attach_i2c(addr, dev):
    _i2c_devs[addr] = dev


class UART:
    """In-memory UART: write() collects into .tx, read() drains .rx."""

    def __init__(self, id=1, baudrate=115200, tx=None, rx=None, **kw):
        self.tx = bytearray()
        self.rx = bytearray()

    def write(self, b):
        self.tx.extend(b)
        return len(b)

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        b = bytes(self.rx[:n] if n >= 0 else self.rx)
        self.rx = self.rx[len(b):]
        return b or None


class _MemRTC:
    """In-process tests: RTC memory in a class attribute."""
    _mem = b""

    def memory(self, data=None):
        if data is None:
            return _MemRTC._mem
        _MemRTC._mem = bytes(data)

    def datetime(self, dt=None):
        if dt is None:
            return time.localtime()[:7] + (0,)


try:
    from machine import RTC   # the virtual board's (host_tools/board.py): kept through deep sleep
except ImportError:
    RTC = _MemRTC


def time_pulse_us(pin, level, timeout_us=1000000):
    if _pulse is None:
        return -1
    return _pulse(pin, level, timeout_us)


def set_pulse_source(fn):
    global _pulse
    _pulse = fn


def hold(pin, on):
    """The pad hold of hal_esp32.hold: the simulated pin remembers it (tests look)."""
    pin.held = on


_irq = [0, 0]     # inside disable_irq(): [1, the cpu_us() it returns next]


def disable_irq():
    _irq[0], _irq[1] = 1, time.ticks_us()
    return 0


def enable_irq(state=0):
    _irq[0] = 0


def cpu_us():
    """Microseconds as the code of a board sees them, for the chip models: real time,
    except between disable_irq() and enable_irq(), where a board runs undisturbed (about
    1 us per pin edge) but the unix process may be preempted: there each call is 1 us."""
    if _irq[0]:
        _irq[1] += 1
        return _irq[1]
    return time.ticks_us()


def unique_id():
    return b"virtual\x00"


# ---- deep sleep (hal_sim.py: the virtual board's machine, _m, makes it a reset) -----
def wake_reason():
    from firmware import hal_sim
    return hal_sim._m.wake_reason() if hal_sim._m else 0


def wake_on_button(pin):
    """Arm the button's Pin as a deep-sleep wake source (EXT0/GPIO on an ESP32). Its id is
    kept as hal_sim.pins[-1]: a module global would be one more qstr in RAM."""
    from firmware import hal_sim
    hal_sim.pins[-1] = pin.id


def deepsleep(ms=0):
    """Deep sleep. On the virtual board it is what it is on an ESP32, a reset: the time
    passes (at the world's speed), a press of an armed button ends it early, then the
    process ends (RAM lost) and the relay boots it with DEEPSLEEP_RESET and the wake
    reason (EXT0 = 2, timer = 4: ESP-IDF's esp_sleep_source_t). In-process tests (no
    relay) get a pause and the reset cause."""
    from firmware import hal_sim
    w = hal_sim._world
    if not hal_sim._m:
        hal_sim._cause = hal_sim.DEEPSLEEP_RESET
        hal_sim.lightsleep(ms)
        return
    wake = 4
    if w is not None:
        t_end = w.now() + ms / 1000
        while True:
            # now() polls the control file, so a press can come in on the very call that
            # finds the time up: it is checked before leaving, or the press (kept in RAM
            # only) would be lost with the process, where a real pin stays held low
            up = w.now() >= t_end
            if w.button_pin == hal_sim.pins.get(-1) is not None and w.data[27] > 0:
                w.data[27] -= 1          # the press that woke it (World slot _PEND)
                wake = 2
                break
            if up:
                break
            hal_sim.sleep_ms(20 if w.speed else 0)
            if not w.speed:
                w.advance(ms / 1000)
        if w.state:
            from firmware.sensors import simstate
            simstate.save(w)
    hal_sim._m.deepsleep(ms, wake)
