# HX711 driver against fake pins that model DOUT / PD_SCK at the bit level.
import sys
if sys.implementation.name != "micropython":  # pytest collects a file named on the command line
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
from firmware.sensors.hx711 import HX711


class Chip:
    """Shifts out queued 24-bit codes MSB first on PD_SCK rising edges; counts the
    pulses of each conversion (25/26/27 select the next gain); DOUT high = busy."""

    def __init__(self, codes, dead=False):
        self.codes = list(codes)
        self.dead = dead
        self.sck = 0
        self.n = 0
        self.cur = 0
        self.counts = []
        self.irq_off = False
        self.clocked_with_irq = 0

    def flush(self):
        if self.n:
            self.counts.append(self.n)
            self.n = 0

    def clock(self, v):
        if v and not self.sck:
            if not self.irq_off:
                self.clocked_with_irq += 1
            if self.n == 0:
                self.cur = self.codes.pop(0)
            self.n += 1
        self.sck = v

    def dout(self):
        if self.dead:
            return 1
        if self.n >= 25:
            self.flush()
        if self.n == 0:
            return 0 if self.codes else 1
        return (self.cur >> (24 - self.n)) & 1 if self.n <= 24 else 1


class SckPin:
    def __init__(self, chip):
        self.chip = chip

    def value(self, v=None):
        if v is None:
            return self.chip.sck
        self.chip.clock(v)


class DoutPin:
    def __init__(self, chip):
        self.chip = chip

    def value(self, v=None):
        return self.chip.dout()


def make(codes, dead=False, **kw):
    c = Chip(codes, dead)

    def dis():
        c.irq_off = True
        return 7

    def en(st):
        assert st == 7
        c.irq_off = False
    kw.setdefault("timeout_ms", 15)
    return c, HX711(DoutPin(c), SckPin(c), disable_irq=dis, enable_irq=en, **kw)


def test_twos_complement_decoding():
    codes = [0x000001, 0xFFFFFF, 0x800001, 0x7FFFFE, 0x000000, 0x123456]
    c, h = make(codes)
    got = [h.read_raw() for _ in codes]
    assert got == [1, -1, -8388607, 8388606, 0, 0x123456], got
    c.flush()
    assert c.counts == [25] * 6, c.counts
    assert c.clocked_with_irq == 0   # PD_SCK only toggles with interrupts off


def test_gain_pulse_counts():
    for gain, n in ((128, 25), (32, 26), (64, 27)):
        c, h = make([5, 6, 7], gain=gain)
        h.read_raw()
        h.read_raw()
        c.flush()
        assert c.counts == [n, n], (gain, c.counts)
    try:
        make([], gain=100)
        raise AssertionError("bad gain accepted")
    except KeyError:
        pass


def test_saturated_codes_are_none():
    c, h = make([0x7FFFFF, 0x800000, 42])
    assert h.read_raw() is None
    assert h.read_raw() is None
    assert h.read_raw() == 42


def test_trimmed_mean_tare_and_scale():
    c, h = make([100, 102, 98, 5000, 101], samples=5, trim=1)
    assert h.read_avg_raw() == 101
    c.codes = [1000] * 5
    assert h.tare() and h.offset == 1000
    c.codes = [1000 + 4200] * 5
    assert h.calibrate(10.0) and h.scale == 420
    c.codes = [1000 + 2100, 1000 + 2100, 1000 + 2100, 0xFFFFFF, 1000 + 2100]
    g = h.read()
    assert abs(g - 5.0) < 0.01, g   # the -1 outlier is trimmed away


def test_dead_chip_times_out_to_none():
    c, h = make([], dead=True, samples=3)
    assert h.read_raw() is None
    assert h.read() is None
    assert not h.tare()
    assert c.counts == [] and c.n == 0   # never clocked a dead chip


def test_partial_dropout():
    # 2 of 5 conversions arrive, then DOUT stays high: fewer than half -> None
    c, h = make([10, 11], samples=5)
    assert h.read() is None
    c2, h2 = make([10, 12, 11], samples=5, trim=1)
    assert h2.read_avg_raw() == 11      # 3 of 5 valid is enough


def test_setup_and_power():
    c, h = make([0, 7])
    h.setup()
    assert c.sck == 0 and h.read_raw() == 7
    h.power_down()
    assert c.sck == 1
    h.power_up()
    assert c.sck == 0
