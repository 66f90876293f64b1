"""Simulated HAL for the MicroPython unix port (the virtual board).

Same names and call signatures as firmware/hal_esp32.py. The simulated machine
keeps pin levels, ADC voltages, I2C devices and a pulse source in module dicts
that tests and the world drive (set_pin, set_adc, attach_i2c, set_pulse_source).
The world itself (consumption, noise, refills, button, control file) is
firmware/sensors/simworld.py, kept apart so each module compiles in a small heap.
What the agent on the virtual board does not use (ADC, I2C, UART, RTC, pulses, irq,
unique_id) is in firmware/hal_simx.py, loaded on first use (module __getattr__), so it
costs no RAM in a run that does not touch it.
"""
from firmware.sensors.simworld import World, ticks_ms, ticks_us, ticks_diff, ticks_add, sleep_ms, sleep_us  # noqa: F401

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
        if (cfg.get("sensor") or {}).get("type") == "hx711":
            from firmware.sensors import simhx711   # the driver reads a chip model
            simhx711.in_world(_world, cfg)
    return _world


def set_world(w):
    global _world
    _world = w


# ---- simulated machine ----------------------------------------------------
pins = {}      # pin id -> level driven from outside (tests, simulations); the name is
               # a qstr the board file's "pins" key makes anyway
chips = {}     # pin id -> chip model answering for it: chip.pin(pin, v) (simhx711.py)


def __getattr__(name):
    from firmware import hal_simx
    return getattr(hal_simx, name)


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, id, mode=-1, pull=None, value=None):
        self.id = id
        self.pull = pull
        if value is not None:
            self.value(value)

    def value(self, v=None):
        c = chips.get(self.id)
        if c is not None:
            return c.pin(self, v)
        if v is not None:
            pins[self.id] = 1 if v else 0
            return None
        w = _world
        if w is not None and w.button_pin == self.id:
            return w.pin_level()
        return pins.get(self.id, 1 if self.pull == Pin.PULL_UP else 0)

    __call__ = value

    def on(self):
        pins[self.id] = 1

    def off(self):
        pins[self.id] = 0


def set_pin(id, level):
    """Drive a simulated input pin from outside."""
    pins[id] = level


try:   # the virtual board's machine (host_tools/board.py MACHINE_SHIM) acts like an ESP32's
    import machine as _m
    WDT = _m.WDT    # AttributeError: the bare unix port's machine, in-process tests
except (ImportError, AttributeError):
    _m = None

    class WDT:   # type: ignore[no-redef]
        def __init__(self, id=0, timeout=5000):
            pass   # in-process tests: nothing to guard; the virtual board's bites

        feed = __init__   # one function for both


PWRON_RESET = 1
DEEPSLEEP_RESET = 4
_cause = _m.reset_cause() if _m else PWRON_RESET   # in-process tests set it
# (wake_reason, wake_on_button and deepsleep are in hal_simx, loaded to sleep or to wake)


def reset_cause():
    return _cause


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
