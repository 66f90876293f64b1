# Ultrasonic, analog, button and simulated sensors against fakes.
import sys
if sys.implementation.name != "micropython":  # pytest collects a file named on the command line
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
from firmware.sensors.ultrasonic import Ultrasonic
from firmware.sensors import analog
from firmware.sensors.analog import Analog
from firmware.sensors.button import Button
from firmware.sensors.sim import SimSensor


class Pin:
    def __init__(self, v=0):
        self.v = v
        self.trace = []

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        self.trace.append(v)


def nosleep(_):
    pass


def sonar(widths, **kw):
    calls = []
    ws = list(widths)

    def pulse(pin, level, timeout):
        calls.append((pin, level, timeout))
        w = ws.pop(0)
        if isinstance(w, Exception):
            raise w
        return w
    trig, echo = Pin(), Pin()
    u = Ultrasonic(trig, echo, pulse, nosleep, nosleep, **kw)
    return u, trig, echo, calls


def test_ultrasonic_distance_and_temperature():
    u, trig, echo, calls = sonar([5831], samples=1)
    d = u.read()
    assert abs(d - 1001.24) < 0.01, d      # 5831 us at 20 C (343.42 m/s)
    assert trig.trace == [0, 1, 0] and calls == [(echo, 1, 30000)]
    u, *_ = sonar([5831], samples=1, temp_c=0.0)
    assert abs(u.read() - 5831 * 331.3 / 2000) < 0.01


def test_ultrasonic_median_and_timeouts():
    u, *_ = sonar([1000, -2, 1200, 1100, -1], samples=5)
    d = u.read()   # valid: 1000, 1200, 1100 -> median 1100 us
    assert abs(d - 1100 * 343.42 / 2000) < 0.1, d
    u, *_ = sonar([-1, -2, -1])
    assert u.read() is None                # no echo at all: dead / disconnected
    u, *_ = sonar([OSError(5), 50, 10])
    assert u.read() is None                # errors and < min_mm blind zone
    u, *_ = sonar([30000, 29000, 28000], max_mm=4000)
    assert u.read() is None                # beyond range


def jsn(model_kw=None, **kw):
    """A JSN-SR04T model and the driver as the C3 board builds it, on a test clock."""
    from firmware.sensors.simsonar import SonarModel
    from mptutil import Clock, OutPin
    clk = Clock()
    m = SonarModel(clk, **dict({"trig_us": 20}, **(model_kw or {})))
    kw.setdefault("samples", 5)
    kw.setdefault("trig_us", 20)
    u = Ultrasonic(OutPin(m.trig), Pin(), m.pulse, clk.sleep_us, clk.sleep_ms, min_mm=250, max_mm=4500,
                   **kw)
    return m, u


def test_ultrasonic_model_true_distance_and_pings_60ms_apart():
    m, u = jsn({"distance_mm": 800})
    d = u.read()
    assert abs(d - 800) < 1 and m.pings == 5, (d, m.pings)
    m, u = jsn({"distance_mm": 800}, gap_ms=5)      # too fast: the previous burst rings on
    d = u.read()
    assert m.pings == 1 and abs(d - 800) > 10, (m.pings, d)   # four pings heard old echoes


def test_ultrasonic_short_trigger_is_ignored():
    m, u = jsn({"distance_mm": 800}, trig_us=10)    # a JSN wants 20 us
    assert u.read() is None and m.pings == 0


def test_ultrasonic_temperature_compensation():
    # 35 deg C air, 800 mm: assuming 20 deg C reads ~21 mm short... of the truth
    m, u = jsn({"distance_mm": 800, "temp_c": 35.0})
    assert abs(u.read() - 800) > 15
    m, u = jsn({"distance_mm": 800, "temp_c": 35.0}, temp_c=35.0)
    assert abs(u.read() - 800) < 1
    m, u = jsn({"distance_mm": 800, "temp_c": 5.0}, temp=lambda: 5.0)   # from a sensor
    assert abs(u.read() - 800) < 1
    m, u = jsn({"distance_mm": 800}, temp=lambda: None, temp_c=20.0)    # sensor down
    assert abs(u.read() - 800) < 1


def test_ultrasonic_blind_zone_and_beyond_range():
    # 200 mm is in the JSN's 250 mm blind zone: the module reports the second echo, 400 mm,
    # a plausible wrong level (why boardcheck keeps the full level out of the blind zone)
    m, u = jsn({"distance_mm": 200})
    assert abs(u.read() - 400) < 1
    m, u = jsn({"distance_mm": 100})                 # second echo 200 mm: below min_mm
    assert u.read() is None
    m, u = jsn({"distance_mm": 5000})                # no echo: ECHO high 60 ms > timeout
    assert u.read() is None


def test_ultrasonic_second_echoes_are_outvoted():
    m, u = jsn({"distance_mm": 900, "second_p": 0.1, "seed": 3})
    got = [u.read() for _ in range(20)]
    assert all(abs(g - 900) < 1 for g in got), got
    m, u = jsn({"distance_mm": 900, "second_p": 0.1, "seed": 3}, samples=1)
    got = [u.read() for _ in range(20)]
    assert any(abs(g - 1800) < 1 for g in got)      # one ping alone believes it


class Adc:
    def __init__(self, uv):
        self.uv = uv

    def read_uv(self):
        if self.uv is None:
            raise OSError(5)
        return self.uv


def test_analog_two_point_and_dead():
    a = Analog(Adc(500000), uv=(500000, 2400000), value=(0.0, 1900.0),
               valid_uv=(400000, 2450000), samples=4)
    assert a.read() == 0.0
    a.adc.uv = 1450000
    assert abs(a.read() - 950.0) < 1e-3     # float32 on an ESP32: not exact
    a.adc.uv = 2400000
    assert abs(a.read() - 1900.0) < 1e-3
    a.adc.uv = 0            # wire cut: below the valid window
    assert a.read() is None
    a.adc.uv = 3100000      # shorted to the rail
    assert a.read() is None
    a.adc.uv = None         # ADC error
    assert a.read() is None
    try:
        Analog(Adc(0), uv=(500000, 500000))
        raise AssertionError("degenerate calibration accepted")
    except ValueError:
        pass


def test_analog_refuses_calibration_outside_the_linear_range():
    # 11 dB on an ESP32 is linear 150-2450 mV (MicroPython's ESP32 docs), not to 3.1 V
    for uv in ((0, 2000000), (500000, 3100000), (100000, 1000000)):
        try:
            Analog(Adc(0), uv=uv)
            raise AssertionError("calibration %r accepted" % (uv,))
        except ValueError as e:
            assert "linear range" in str(e), e
    lo, hi = analog.linear_uv("esp32c3", 11)
    assert (lo, hi) == (0, 2500000)
    Analog(Adc(0), uv=(0, 2500000), linear=(lo, hi))   # fine on a C3
    try:
        analog.linear_uv("esp32", 3)
        raise AssertionError("3 dB accepted")
    except ValueError:
        pass


def test_analog_reading_beyond_the_knee_is_none_on_the_simulated_adc():
    # the simulated ADC bends over above 2450 mV at 11 dB as an ESP32 does: a reading
    # there would be a wrong level, so the driver gives None
    from firmware import hal_simx
    a = Analog(hal_simx.ADC(7, 11), uv=(500000, 2400000), value=(0.0, 100.0), samples=2)
    hal_simx.set_adc(7, 1450000)
    assert abs(a.read() - 50.0) < 1e-4
    hal_simx.set_adc(7, 2800000)
    assert hal_simx.ADC(7, 11).read_uv() < 2800000     # the knee
    assert a.read() is None
    hal_simx.set_adc(7, 80000)
    assert hal_simx.ADC(7, 11).read_uv() == 0          # <= 100 mV reads 0
    assert a.read() is None
    hal_simx.set_adc(7, 160000)
    assert a.read() is not None


def test_button_debounce_once_per_press():
    t = [0]
    p = Pin(1)
    b = Button(p, active_low=True, debounce_ms=30, ticks_ms=lambda: t[0],
               ticks_diff=lambda a, b: a - b)
    seq = []
    # bounce: 1 0 1 0 within 10 ms, then held low, then released with bounce
    for ms, v in ((0, 1), (2, 0), (4, 1), (6, 0), (10, 0), (20, 0), (40, 0), (50, 0),
                  (60, 0), (100, 1), (102, 0), (104, 1), (140, 1), (200, 1)):
        t[0] = ms
        p.v = v
        seq.append(b.pressed())
    assert seq.count(True) == 1 and seq[6] is True, seq
    t[0] = 210
    p.v = 0
    assert b.pressed() is False
    t[0] = 300
    assert b.pressed() is True and b.read() is True


class DeadPin:
    def value(self, v=None):
        raise OSError(5)


def test_button_dead_pin_never_presses():
    b = Button(DeadPin(), debounce_ms=0)
    assert not b.pressed() and not b.pressed()


class FakeWorld:
    def __init__(self, vals):
        self.vals = list(vals)

    def read_sensor(self):
        v = self.vals.pop(0)
        if isinstance(v, Exception):
            raise v
        return v


def test_sim_sensor_reads_world():
    s = SimSensor(FakeWorld([2500.0, None, ValueError("x")]))
    s.setup()
    assert s.read() == 2500.0
    assert s.read() is None
    assert s.read() is None
