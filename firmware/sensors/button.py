"""Debounced push button, polled. pressed() is True once per press.

A contact bounces for a few ms; the level must stay unchanged for `debounce_ms`
before it counts, so the caller must poll at least twice per press (the main
loop and the simulated world both do). Active low with the internal pull-up by
default (the ESP32 BOOT button on GPIO 0 is wired that way).
"""


class Button:
    def __init__(self, pin, active_low=True, debounce_ms=50, ticks_ms=None, ticks_diff=None):
        import time
        self.pin = pin
        self._on = 0 if active_low else 1
        self.debounce_ms = debounce_ms
        self._ticks = ticks_ms or time.ticks_ms
        self._diff = ticks_diff or time.ticks_diff
        self._raw = self._stable = 1 - self._on
        self._t = self._ticks()

    def setup(self):
        pass

    def pressed(self):
        try:
            v = self.pin.value()
        except OSError:
            return False
        now = self._ticks()
        if v != self._raw:
            self._raw = v
            self._t = now
            return False
        if v != self._stable and self._diff(now, self._t) >= self.debounce_ms:
            self._stable = v
            return v == self._on
        return False

    def read(self):
        """Debounced state: True while held down."""
        self.pressed()
        return self._stable == self._on


def create(pin_id, b=None):
    """Pin from board "pins" {"button": N}; options from board "button" section."""
    from firmware import hal
    b = b or {}
    low = b.get("active_low", True)
    pin = hal.Pin(pin_id, hal.Pin.IN, hal.Pin.PULL_UP if low else hal.Pin.PULL_DOWN)
    return Button(pin, low, b.get("debounce_ms", 50), hal.ticks_ms, hal.ticks_diff)
