# HX711 driver against a chip model (firmware/sensors/simhx711.py) on a test clock: DOUT
# ready/busy, the 25th pulse, power-down on a long PD_SCK high, settling, dead chips.
import sys
if sys.implementation.name != "micropython":  # pytest collects a file named on the command line
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
from firmware.sensors.hx711 import HX711, E_TIMEOUT, E_STUCK_LOW, E_STUCK, E_RANGE, E_NOISE
from firmware.sensors.simhx711 import HX711Chip
from mptutil import Clock


class Pin:
    def __init__(self, chip, id, pull=None):
        self.chip, self.id, self.pull = chip, id, pull
        self.held = False

    def value(self, v=None):
        return self.chip.pin(self, v)


def _hold(pin, on):
    pin.held = on


def make(value=0, pull=1, noise=8, rate=10, **kw):
    """A chip (converting since long enough to be settled) and a driver on a test clock."""
    clk = Clock()
    c = HX711Chip(clk.ticks_us, clk.ticks_diff, value, rate=rate, noise=noise)

    def dis():
        c.irq_off = True
        return 7

    def en(st):
        assert st == 7
        c.irq_off = False
    kw.setdefault("timeout_ms", 150)
    h = HX711(Pin(c, "dout", pull), Pin(c, "sck"), ticks_ms=clk.ticks_ms, ticks_diff=clk.ticks_diff,
              sleep_ms=clk.sleep_ms, disable_irq=dis, enable_irq=en, rate=rate, hold=_hold, **kw)
    clk.sleep_ms(1000)
    return clk, c, h


def test_twos_complement_decoding():
    codes = [1, -1, -8388607, 8388606, 0, 0x123456]
    q = list(codes)
    clk, c, h = make(lambda: q.pop(0), noise=0)
    got = [h.read_raw() for _ in codes]
    assert got == codes, got
    c.flush()
    assert c.readouts == [25] * 6 and c.bad_readouts == 0 and c.stray == 0, c.readouts
    assert c.clocked_with_irq == 0   # PD_SCK only toggles with interrupts off
    assert c.power_downs == 0


def test_gain_pulse_counts():
    for gain, n in ((128, 25), (32, 26), (64, 27)):
        clk, c, h = make(1000, gain=gain)
        h.read_raw()
        h.read_raw()
        c.flush()
        assert c.readouts == [n, n] and c.gain == gain, (gain, c.readouts)
    try:
        make(0, gain=100)
        raise AssertionError("bad gain accepted")
    except KeyError:
        pass


def test_saturated_codes_are_none():
    q = [0x7FFFFF, -0x800000, 42]
    clk, c, h = make(lambda: q.pop(0), noise=0)
    assert h.read_raw() is None
    assert h.read_raw() is None
    assert h.read_raw() == 42


def test_trimmed_mean_tare_and_scale():
    q = [100, 102, 98, 5000, 101]
    clk, c, h = make(lambda: q.pop(0), noise=0, samples=5, trim=1)
    assert h.read_avg_raw() == 101
    c.value = 1000
    c.noise = 2
    assert h.tare() and abs(h.offset - 1000) <= 2
    c.value = 1000 + 4200
    assert h.calibrate(10.0) and abs(h.scale - 420) < 1
    c.value = 1000 + 2100
    g = h.read()
    assert abs(g - 5.0) < 0.02, g


def test_absent_chip_times_out_to_none():
    # no chip / open wire: DOUT floats; the pull-up makes it read busy
    clk, c, h = make(5000, samples=3)
    c.mode = "float"
    assert h.read_raw() is None and h.error == E_TIMEOUT
    assert h.read() is None
    assert not h.tare()
    assert c.readouts == [] and c.n == 0   # never clocked a dead chip


def test_dead_chip_with_dout_stuck_low_is_not_zero_grams():
    # a dead or unpowered HX711 pulls DOUT low: 24 zero bits, "0 g, empty tank". The
    # datasheet's check (DOUT high after the 25th pulse) refuses it.
    clk, c, h = make(250000, scale=22.5)
    assert abs(h.read() - 250000 / 22.5) < 1
    c.mode = "stuck"
    assert h.read_raw() is None and h.error == E_STUCK_LOW
    assert h.read() is None and h.error == E_STUCK_LOW
    c.mode = "ok"
    assert abs(h.read() - 250000 / 22.5) < 1     # comes back by itself


def test_floating_dout_without_pull_up_is_refused():
    # without the pull-up, an undriven DOUT reads noise: whatever passes the 25th-pulse
    # check is not a stable code, and ten reads in a row never give a level
    clk, c, h = make(250000, pull=None, samples=5)
    c.mode = "float"
    for _ in range(10):
        assert h.read() is None
        assert h.error in (E_TIMEOUT, E_STUCK_LOW, E_NOISE), h.error


def test_identical_codes_are_a_stuck_bus():
    clk, c, h = make(777, noise=0, samples=5)
    assert h.read() is None and h.error == E_STUCK
    c.noise = 3
    assert abs(h.read() - 777) <= 3


def test_range_g_refuses_an_impossible_weight():
    # a bridge that lost its excitation reads ~0 counts, far below the platform's own zero
    clk, c, h = make(50000 + 11000 * 20, offset=50000, scale=20.0, range_g=(-500, 30000))
    assert abs(h.read() - 11000) < 1
    c.value = 0
    assert h.read() is None and h.error == E_RANGE


def _stops_after(c, codes):
    """The chip converts `codes`, then stops converting (DOUT stays high)."""
    q = list(codes)

    def src():
        v = q.pop(0)
        if not q:
            c.period = 10 ** 8
        return v
    c.value = src


def test_partial_dropout():
    # 2 of 5 conversions arrive, then DOUT stays high: fewer than half -> None
    clk, c, h = make(0, noise=0, samples=5)
    _stops_after(c, [10, 11])
    assert h.read() is None and h.error == E_TIMEOUT
    clk, c, h = make(0, noise=0, samples=5, trim=1)
    _stops_after(c, [10, 12, 11])
    assert h.read_avg_raw() == 11      # 3 of 5 valid is enough


def test_sleep_powers_down_and_holds_sck():
    clk, c, h = make(100000)
    h.setup()
    assert h.read() is not None
    h.sleep()
    assert c.sck == 1 and h.sck.held
    clk.sleep_ms(5)                   # > 60 us high
    assert h.dout.value() == 1 and not c.powered and c.power_downs == 1
    h.setup()                         # wake: PD_SCK low resets the chip
    assert c.powered and c.sck == 0 and not h.sck.held and c.gain == 128


def test_unsettled_conversions_after_power_up_are_discarded():
    # after a reset the chip's first conversions ramp up from 0 for 400 ms (10 SPS)
    for rate in (10, 80):
        clk, c, h = make(200000, rate=rate, samples=3, trim=0)
        h.sleep()
        clk.sleep_ms(100)
        h.setup()
        r = h.read_avg_raw()
        assert abs(r - 200000) <= 8, (rate, r)
        t = clk.us
        assert abs(h.read_avg_raw() - 200000) <= 8   # no settling wait the second time
        assert clk.us - t < 4 * c.period


def test_unsettled_average_without_the_wait_is_wrong():
    # the model's settling is real: reading straight after the reset averages the ramp in
    clk, c, h = make(200000, samples=3, trim=0)
    h.sleep()
    clk.sleep_ms(100)
    h.setup()
    h._up = None                      # as the driver before the settling wait did
    assert h.read_avg_raw() < 150000


def test_long_sck_high_mid_readout_loses_the_conversion():
    # PD_SCK high > 60 us between two bits: the chip powers down (why interrupts are off)
    clk, c, h = make(123456, noise=0)
    assert h.dout.value() == 0
    h.sck.value(1)
    h.sck.value(0)
    h.sck.value(1)
    clk.sleep_us(100)
    h.sck.value(0)
    assert c.power_downs == 1 and c.bad_readouts == 1 and c.powered   # reset on the low edge
    assert h.dout.value() == 1        # nothing ready right after the reset
