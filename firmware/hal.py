"""Hardware access for the firmware: the ESP32 implementation on a board (detected
by `machine.Pin`), the simulated one (firmware/hal_sim.py) on the unix port.

Everything the rest of the firmware needs is re-exported here, with the same
signatures on both:
  Pin(id, mode=-1, pull=None, value=None)     Pin.IN/OUT/OPEN_DRAIN/PULL_UP/PULL_DOWN
  ADC(pin, atten)        .read_u16() .read_uv()  (atten: 0/2.5/6/11 dB on ESP32)
  I2C(id, scl, sda, freq) .readfrom_mem_into/.writeto_mem/.scan
  UART(id, baudrate, tx, rx)  RTC()  WDT(id, timeout)
  deepsleep(ms) lightsleep(ms) reset() reset_cause() unique_id()
  time_pulse_us(pin, level, timeout_us)  disable_irq() enable_irq(state)
  hold(pin, on)          keep an output's level through deep sleep
  ticks_ms ticks_us ticks_diff ticks_add sleep_ms sleep_us
  world(cfg=None)  the simulated World (hal_sim.World) or None on a real board
  SIM              True on the virtual board
The names the agent uses on every cycle are bound here (deepsleep is not: on the
virtual board it lives with the rarely used part); the rest are looked up in the
implementation on first use (module __getattr__), so the simulated HAL's rarely used
parts (firmware/hal_simx.py) stay out of RAM until something asks for them.
"""
try:
    from machine import Pin as _probe  # noqa: F401  (absent on the unix port)
    from firmware import hal_esp32 as _impl
except ImportError:
    from firmware import hal_sim as _impl

SIM = _impl.SIM
Pin = _impl.Pin
WDT = _impl.WDT
reset_cause = _impl.reset_cause
ticks_ms = _impl.ticks_ms
ticks_diff = _impl.ticks_diff
sleep_ms = _impl.sleep_ms
world = _impl.world
PWRON_RESET = _impl.PWRON_RESET
DEEPSLEEP_RESET = _impl.DEEPSLEEP_RESET


def __getattr__(name):
    return getattr(_impl, name)
