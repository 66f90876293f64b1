# VL53L0X driver against a register model of the chip (firmware/sensors/simvl53l0x.py):
# ranges are only valid once ST's init + calibration sequence has been written.
# heapsize: 128K    (several 1 KB register models per test)
import sys
if sys.implementation.name != "micropython":  # pytest collects a file named on the command line
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
from firmware.sensors.vl53l0x import VL53L0X
from firmware.sensors.vl53l0x_init import _decode
from firmware.sensors.simvl53l0x import VL53L0XModel
from mptutil import Clock, OutPin


def with_xshut():
    """A sensor at 734 mm whose XSHUT is wired, initialised and ranging."""
    m = VL53L0XModel(distance_mm=734)
    x = OutPin(m.set_xshut, 1)
    m, s = make(m, xshut=x)
    assert s.read() == 734
    return m, s, x


def make(model=None, **kw):
    m = model or VL53L0XModel(distance_mm=734)
    clk = Clock()
    kw.setdefault("timeout_ms", 10)
    s = VL53L0X(m, ticks_ms=clk.ticks_ms, ticks_diff=clk.ticks_diff, sleep_ms=clk.sleep_ms, **kw)
    return m, s


def test_full_init_then_valid_ranges():
    m, s = make(offset_mm=-4)
    assert s.setup() is True
    assert m.initialised() and m.spads_ok() and m.vhv and m.phase
    assert s._stop == 0x3C
    assert s.read() == 730 and s.status == 11
    m.distance_mm = 400
    assert s.read() == 396


def test_skipping_init_gives_failing_statuses():
    # the old driver's setup (id, 2V8, stop variable, interrupt config) without StaticInit,
    # SPADs, tuning, budget and calibration: the model answers 6/9/8/10 and a wrong range
    m, s = make()
    s.ok = True
    s._stop = 0x3C
    for _ in range(2):
        assert s.read() is None and s.status in (6, 8, 9, 10), s.status
    assert s.ok is True               # two bad reads: not yet wedged
    assert s.read() is None and s.ok is False   # three: re-init on the next read
    assert s.read() == 734 and m.initialised()


def test_spad_map_from_nvm():
    for spads, aperture in ((5, 1), (8, 0), (3, 1)):
        m, s = make(VL53L0XModel(spads=spads, aperture=aperture))
        assert s.setup() and m.spads_ok(), (spads, aperture)


def test_timing_budget_from_the_board():
    m1, s1 = make(budget_us=33000)
    m2, s2 = make(budget_us=200000)
    assert s1.setup() and s2.setup()
    f1 = _decode(m1.mem[0][0x71] << 8 | m1.mem[0][0x72])
    f2 = _decode(m2.mem[0][0x71] << 8 | m2.mem[0][0x72])
    assert f2 > 5 * f1 > 0, (f1, f2)
    m3, s3 = make(budget_us=5000)     # below the API's 20 ms minimum: refused
    assert s3.setup() is False


def test_no_target_is_none_but_not_a_fault():
    m, s = make(VL53L0XModel(distance_mm=3000))
    for _ in range(5):
        assert s.read() is None
    assert s.ok and s.bad == 0


def test_wrong_model_id_and_enodev():
    m = VL53L0XModel()
    m.mem[0][0xC0] = 0xAA
    m, s = make(m)
    assert s.setup() is False and s.read() is None
    m, s = make()
    m.on = False
    assert s.setup() is False and s.read() is None
    m2, s2 = make(addr=0x30)          # wrong address: no ACK
    assert s2.read() is None


def test_brownout_is_recovered_by_reinit():
    m, s = make()
    assert s.read() == 734
    m.brownout()                      # registers lost, still on the bus
    got = [s.read() for _ in range(4)]
    assert got[:3] == [None] * 3 and got[3] == 734, got


def test_wedged_sensor_recovered_with_xshut():
    m, s, x = with_xshut()
    m.wedge()
    for _ in range(3):
        assert s.read() is None       # timeouts
    assert s.ok is False and x.v == 0 and not m.on   # XSHUT pulled low
    assert s.read() == 734 and m.on   # XSHUT up, re-init, calibrated again


def test_wedged_without_xshut_stays_none():
    m, s = make()
    assert s.read() == 734
    m.wedge()
    assert all(s.read() is None for _ in range(6))   # never a made-up distance


def test_sleep_uses_xshut():
    m, s, x = with_xshut()
    s.sleep()
    assert not m.on and x.v == 0
    assert s.read() == 734


def test_unplug_and_replug():
    m, s = make()
    assert s.read() == 734
    m.on = False
    assert s.read() is None and s.ok is False
    m.on = True
    assert s.read() == 734
