"""Simulated HAL for the MicroPython unix port (the virtual board).

Same names and call signatures as firmware/hal_esp32.py. The simulated machine
keeps pin levels, ADC voltages, I2C devices and a pulse source in module dicts
that tests and the world drive (set_pin, set_adc, attach_i2c, set_pulse_source).
The world itself (consumption, noise, refills, button, control file) is
firmware/sensors/simworld.py, kept apart so each module compiles in a small heap.
"""
from firmware.sensors.simworld import World, ticks_ms, ticks_us, ticks_diff, ticks_add, sleep_ms, sleep_us  # noqa: F401
import time

SIM = True

_world = None


def world(cfg=None):
    """The process-wide World. Built on first use from `cfg` (a board dict), or
    from /board.json's "world" section when it exists, else defaults."""
    global _world
    if _world is None or cfg is not None:
        if cfg is None:
            try:
                from firmware import board
                cfg = board.load()
            except (OSError, ValueError, ImportError):
                cfg = {}
        _world = World(cfg.get("world"), cfg.get("pins", {}).get("button"))
    return _world


def set_world(w):
    global _world
    _world = w


# ---- simulated machine ----------------------------------------------------
_levels = {}      # pin id -> level driven from outside (tests, simulations)
_adc_uv = {}      # pin id -> microvolts
_i2c_devs = {}    # address -> object with readfrom_mem_into/writeto_mem
_pulse = None     # callable(pin, level, timeout_us) -> us or -1/-2


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, id, mode=-1, pull=None, value=None):
        self.id = id
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=None, value=None):
        if mode != -1:
            self.mode = mode
        self.pull = pull
        if value is not None:
            _levels[self.id] = 1 if value else 0

    def value(self, v=None):
        if v is not None:
            _levels[self.id] = 1 if v else 0
            return None
        w = _world
        if w is not None and w.button_pin == self.id:
            return w.pin_level()
        return _levels.get(self.id, 1 if self.pull == Pin.PULL_UP else 0)

    __call__ = value

    def on(self):
        _levels[self.id] = 1

    def off(self):
        _levels[self.id] = 0


def set_pin(pin_id, level):
    """Drive a simulated input pin from outside."""
    _levels[pin_id] = level


class ADC:
    # usable full scale (uV) per attenuation in dB, as on an ESP32
    _FS = {0: 950000, 2.5: 1250000, 6: 1750000, 11: 3100000}

    def __init__(self, pin, atten=11):
        self.pin = pin
        self.atten = atten

    def read_uv(self):
        return min(_adc_uv.get(self.pin, 0), self._FS[self.atten])

    def read_u16(self):
        return self.read_uv() * 65535 // self._FS[self.atten]


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


class RTC:
    _mem = b""

    def memory(self, data=None):
        if data is None:
            return RTC._mem
        RTC._mem = bytes(data)

    def datetime(self, dt=None):
        if dt is None:
            return time.localtime()[:7] + (0,)


class WDT:
    def __init__(self, id=0, timeout=5000):
        pass

    def feed(self):
        pass   # nothing to guard on the unix port; a hang shows in HIL timeouts


PWRON_RESET = 1
DEEPSLEEP_RESET = 4
_cause = PWRON_RESET


def reset_cause():
    return _cause


def deepsleep(ms=0):
    """On the virtual board deep sleep is a pause of ms simulated milliseconds."""
    global _cause
    _cause = DEEPSLEEP_RESET
    lightsleep(ms)


def lightsleep(ms=0):
    w = _world
    if w is not None and not w.speed:
        w.advance(ms / 1000)
    elif w is not None:
        sleep_ms(int(ms / w.speed))
    else:
        sleep_ms(ms)


def reset():
    raise SystemExit(0)   # the virtual board's relay restarts the process


def time_pulse_us(pin, level, timeout_us=1000000):
    if _pulse is None:
        return -1
    return _pulse(pin, level, timeout_us)


def set_pulse_source(fn):
    global _pulse
    _pulse = fn


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def unique_id():
    return b"virtual\x00"
