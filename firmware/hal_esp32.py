"""HAL on a real ESP32: a thin layer over `machine`.

Only what differs between boards is wrapped (ADC attenuation given in dB, I2C bus
given as pin numbers, WDT timeout in ms); everything else is `machine` itself, so
there is no per-call overhead on the bit-banging paths (HX711, HC-SR04).
"""
import time
import machine

SIM = False

Pin = machine.Pin
RTC = machine.RTC
time_pulse_us = machine.time_pulse_us
disable_irq = machine.disable_irq
enable_irq = machine.enable_irq
unique_id = machine.unique_id
reset = machine.reset
reset_cause = machine.reset_cause
deepsleep = machine.deepsleep
lightsleep = machine.lightsleep
PWRON_RESET = machine.PWRON_RESET
DEEPSLEEP_RESET = machine.DEEPSLEEP_RESET
wake_reason = machine.wake_reason

ticks_ms = time.ticks_ms
ticks_us = time.ticks_us
ticks_diff = time.ticks_diff
ticks_add = time.ticks_add
sleep_ms = time.sleep_ms
sleep_us = time.sleep_us


def ADC(pin, atten=11):
    """ADC on GPIO `pin`; `atten` in dB (0, 2.5, 6, 11) sets the input range
    (about 0.95, 1.25, 1.75, 3.1 V full scale after eFuse calibration)."""
    a = machine.ADC
    code = {0: a.ATTN_0DB, 2.5: a.ATTN_2_5DB, 6: a.ATTN_6DB, 11: a.ATTN_11DB}[atten]
    return a(machine.Pin(pin), atten=code)


def I2C(id, scl, sda, freq=400000):
    """Hardware I2C bus `id` (0/1) on the given pins; id -1 gives SoftI2C."""
    if id < 0:
        return machine.SoftI2C(scl=machine.Pin(scl), sda=machine.Pin(sda), freq=freq)
    return machine.I2C(id, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=freq)


def UART(id, baudrate=115200, tx=None, rx=None, **kw):
    if tx is None:
        return machine.UART(id, baudrate=baudrate, **kw)
    return machine.UART(id, baudrate=baudrate, tx=tx, rx=rx, **kw)


def hold(pin, on):
    """Keep (on) or release an output's level, also through deep sleep: the pad hold of
    MicroPython's esp32 Pin (hold=), plus esp32.gpio_deep_sleep_hold for the pins outside
    the RTC domain (the HX711's PD_SCK must stay high while the board sleeps)."""
    pin.init(hold=on)
    try:
        import esp32
    except ImportError:
        return
    f = getattr(esp32, "gpio_deep_sleep_hold", None)   # where the port has it
    if on and f is not None:
        f(True)


def WDT(id=0, timeout=5000):
    return machine.WDT(id, timeout=timeout)


def wake_on_button(pin):
    """Arm the (active-low) button's Pin as a deep-sleep wake source. ESP32 and S3: EXT0, RTC IO
    pins only (ESP32: 0, 2, 4, 12-15, 25-27, 32-39); the C3 has no EXT0 and wakes from
    deep sleep on GPIO 0-5 only (esp32.wake_on_gpio, or wake_on_ext1 on older firmware).
    firmware/boardcheck.py refuses a button on a pin the chip cannot wake from."""
    import esp32
    p = pin     # the button's machine.Pin (input, pull-up: firmware/sensors/button.py)
    if hasattr(esp32, "wake_on_ext0"):
        esp32.wake_on_ext0(p, esp32.WAKEUP_ALL_LOW)
    else:
        (getattr(esp32, "wake_on_gpio", None) or esp32.wake_on_ext1)((p,), esp32.WAKEUP_ALL_LOW)


def world(cfg=None):
    return None   # only the virtual board has a simulated world
