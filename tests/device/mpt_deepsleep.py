# Deep sleep on a board: what must survive the RAM loss goes to RTC memory
# (firmware/power.py), the sensor chip is put to sleep, the button armed.
# heapsize: 128K
import sys
if sys.implementation.name != "micropython":
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
from firmware import filters, hal, hal_sim, power

CHAIN = [{"type": "median", "n": 5}, {"type": "outlier", "max_jump": 0.1, "confirm": 3},
         {"type": "ema", "alpha": 0.3}]


class _Agent:
    def __init__(self):
        self.chain = filters.build(CHAIN, 3000.0)
        self.fails = 0


def test_filter_chain_and_fault_count_survive_in_rtc_memory():
    a = _Agent()
    for x in (2990.0, 2987.5, 2986.0, 3400.0, 2984.0, 2983.0):   # 3400: a spike
        a.chain.update(x)
    a.chain.update(None)
    a.fails = 3
    power.save(a)
    want = [a.chain.update(2981.0), a.chain.quality()]
    b = _Agent()                      # a wake: everything built afresh from the board file
    assert power.load(b) and b.fails == 3
    assert [b.chain.update(2981.0), b.chain.quality()] == want
    c = _Agent()                      # without RTC memory the chain starts empty
    assert [c.chain.update(2981.0), c.chain.quality()] != want


def test_rtc_memory_of_another_layout_is_ignored():
    hal.RTC().memory(b"RM1" + bytes(16))
    a = _Agent()
    assert not power.load(a) and a.fails == 0
    hal.RTC().memory(b"")
    assert not power.load(a)


class _Sensor:
    slept = 0

    def sleep(self):
        _Sensor.slept += 1


class _Timer:
    def left(self, t):
        return 60


class _Button:
    pin = hal.Pin(4)


class _Outbox:
    def __len__(self):
        return 0


def test_sleep_puts_the_sensor_to_sleep_and_arms_the_button():
    a = _Agent()
    a.outbox, a.sample, a.sensor, a.button = _Outbox(), _Timer(), _Sensor(), _Button()
    a.checkpoint = lambda: True
    hal_sim.set_world(hal_sim.World({"speed": 0, "ctl": None}))   # manual clock: no real wait
    power.sleep(a)
    assert _Sensor.slept == 1 and hal_sim.pins.get(-1) == 4
    assert hal.reset_cause() == hal.DEEPSLEEP_RESET
    hal_sim._cause = hal.PWRON_RESET


def test_a_press_as_the_sleep_ends_still_wakes_it_by_the_button():
    # the world's clock polls the control file, so a press can arrive on the very call
    # that finds the sleep over: it must still be the wake (EXT0), not be lost with the
    # process as the timer's wake (the HIL deep-sleep test timed out on that, once)
    from firmware import hal_simx

    class _Machine:
        def deepsleep(self, ms, wake):
            self.wake = wake
    w = hal_sim.World({"speed": 0, "ctl": None}, button_pin=4)
    hal_sim.set_world(w)
    adv = w.advance

    def advance(s):
        adv(s)
        w.press()                   # it came in while the time went by
    w.advance = advance
    m, hal_sim._m = hal_sim._m, _Machine()
    hal_sim.pins[-1] = 4            # the button armed as the wake source
    try:
        hal_simx.deepsleep(1000)
        assert hal_sim._m.wake == 2 and w.data[27] == 0, hal_sim._m.wake   # EXT0, used
    finally:
        hal_sim._m = m
        hal_sim.pins.pop(-1, None)
