# firmware/clock.py against an ESP32's RTC: time.time() starts again at 0 after a
# power-on reset (power cut, EN button) and keeps counting through deep sleep.
import sys
if sys.implementation.name != "micropython":
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
from firmware import clock
from firmware.sensors.simworld import World
from firmware.sensors.simstate import power_on

DAY = 86400


def _world():
    w = World({"speed": 0, "ctl": None, "capacity": 100, "rate_per_day": 1})
    clock.use_world(w)
    clock.restore(None)
    return w


def test_rtc_restarts_at_power_on_but_now_never_goes_back():
    w = _world()
    w.advance(9 * DAY)
    assert clock.now() == 9 * DAY
    saved = clock.state()              # the checkpoint
    w.advance(3600)
    power_on(w)                       # a power cut: the RTC starts again at 0
    assert w.now() == 0
    clock.restore(saved)               # the next boot
    assert clock.now() == 9 * DAY      # from the checkpoint on, not from 0
    w.advance(60)
    assert clock.now() == 9 * DAY + 60
    clock.use_world(None)


def test_deep_sleep_keeps_the_rtc():
    w = _world()
    w.advance(2 * DAY)
    saved = clock.state()
    w.advance(600)                     # deep sleep: the RTC counts on, no power_on()
    clock.restore(saved)
    assert clock.now() == 2 * DAY + 600
    clock.use_world(None)


def test_wall_clock_after_a_cut_moves_now_forward_by_the_outage():
    w = _world()
    w.advance(5 * DAY)
    clock.set_wall(1700000000)         # the hello's time downlink
    assert clock.wall() == 1700000000
    saved = clock.state()
    w.advance(4 * 3600)                # 4 h on, then the power is off for a day
    power_on(w)
    w.advance(DAY)
    clock.restore(saved)
    assert clock.now() == 5 * DAY      # the outage and the 4 h are not known yet
    clock.set_wall(1700000000 + 4 * 3600 + DAY)
    assert clock.now() == 5 * DAY + 4 * 3600 + DAY
    assert clock.wall() == 1700000000 + 4 * 3600 + DAY
    before = clock.now()
    clock.set_wall(1700000000)         # a wall clock behind: now() never goes back
    assert clock.now() == before and clock.wall() == 1700000000
    clock.use_world(None)
