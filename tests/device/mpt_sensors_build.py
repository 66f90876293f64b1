# Drivers built from each board file's "sensor" section on the simulated HAL:
# with nothing attached they all read None (dead sensor), never raise.
import sys
if sys.implementation.name != "micropython":  # pytest collects a file named on the command line
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
import json
from firmware import hal, hal_sim, sensors


def _cfg(name):
    with open("boards/%s.json" % name) as f:
        return json.load(f)


def test_hx711_from_board_dead_and_alive():
    cfg = _cfg("esp32-devkitc")
    cfg["sensor"]["timeout_ms"] = 5
    hal_sim.set_pin(cfg["sensor"]["pins"]["dout"], 1)    # DOUT high: no conversion
    s = sensors.build(cfg)
    assert s.extra == 1 and s.scale == 22.5
    assert s.read() is None
    hal_sim.set_pin(cfg["sensor"]["pins"]["dout"], 0)    # reads all-zero code
    assert s.read() == 0


def test_vl53l0x_from_board_absent():
    s = sensors.build(_cfg("esp32-s3-devkitc-1"))
    assert s.setup() is False and s.read() is None and s.offset_mm == -10


def test_ultrasonic_from_board():
    cfg = _cfg("esp32-c3-devkitm-1")
    s = sensors.build(cfg)
    s.gap_ms = 0
    assert s.min_mm == 200 and s.trig_us == 20 and len(s._buf) == 5
    assert s.read() is None                               # no echo: -1
    hal_sim.set_pulse_source(lambda p, lv, t: 2912)       # ~500 mm at 20 C
    try:
        assert abs(s.read() - 500.0) < 1
    finally:
        hal_sim.set_pulse_source(None)


def test_analog_from_config():
    cfg = {"sensor": {"type": "analog", "pins": {"adc": 3}, "atten": 11,
                      "valid_uv": [400000, 2600000],
                      "calibration": {"uv": [500000, 2500000], "value": [0, 300]}}}
    s = sensors.build(cfg)
    assert s.read() is None                               # 0 V: disconnected
    hal_sim.set_adc(3, 1500000)
    assert s.read() == 150


def test_button_and_unknown_type():
    b = sensors.build_button({"pins": {"button": 33}, "button": {"debounce_ms": 0}})
    hal_sim.set_pin(33, 1)
    assert b.pressed() is False
    assert sensors.build_button({"pins": {}}) is None
    try:
        sensors.build({"sensor": {"type": "lidar"}})
        raise AssertionError("unknown type accepted")
    except ValueError:
        pass
