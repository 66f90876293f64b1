# Drivers built from each board file's "sensor" section on the simulated HAL:
# with nothing attached they all read None (dead sensor), never raise.
# heapsize: 128K    (every driver compiled from source in one process; a board loads one .mpy)
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
    from firmware.sensors import simhx711
    cfg = _cfg("esp32-devkitc")
    cfg["sensor"]["timeout_ms"] = 5
    p = cfg["sensor"]["pins"]
    s = sensors.build(cfg)
    assert s.extra == 1 and s.scale == 22.5
    assert s.dout.pull == hal.Pin.PULL_UP       # an absent chip reads busy, not random bits
    assert s.read() is None                     # nothing on the pins: pulled up, busy
    hal_sim.set_pin(p["dout"], 0)               # DOUT held low: a dead chip's zeros
    assert s.read() is None
    chip = simhx711.HX711Chip(hal.cpu_us, hal.ticks_diff, 22500, rate=80)
    simhx711.attach(chip, p["dout"], p["sck"])
    try:
        s = sensors.build(cfg)
        s.timeout_ms = 50
        s.setup()
        g = s.read()
        assert g is not None and abs(g - 1000) < 1, g
        s.sleep()
        assert s.sck.held
        hal.sleep_ms(1)
        assert s.read() is None and not chip.powered    # asleep: DOUT high
        s.setup()
        assert abs(s.read() - 1000) < 1
    finally:
        hal_sim.chips.clear()


def test_vl53l0x_from_board_absent():
    s = sensors.build(_cfg("esp32-s3-devkitc-1"))
    assert s.setup() is False and s.read() is None and s.offset_mm == -10


def test_ultrasonic_from_board():
    cfg = _cfg("esp32-c3-devkitm-1")
    s = sensors.build(cfg)
    s.gap_ms = 0
    assert s.min_mm == 250 and s.trig_us == 20 and len(s._buf) == 5
    assert s.read() is None                               # no echo: -1
    hal_sim.set_pulse_source(lambda p, lv, t: 2912)       # ~500 mm at 20 C
    try:
        assert abs(s.read() - 500.0) < 1
    finally:
        hal_sim.set_pulse_source(None)


def test_analog_from_config():
    cfg = {"sensor": {"type": "analog", "pins": {"adc": 3}, "atten": 11,
                      "valid_uv": [400000, 2600000],
                      "calibration": {"uv": [500000, 2400000], "value": [0, 190]}}}
    s = sensors.build(cfg)
    assert s.read() is None                               # 0 V: disconnected
    hal_sim.set_adc(3, 1450000)
    assert abs(s.read() - 95) < 1e-3
    cfg["sensor"]["calibration"]["uv"] = [500000, 2500000]   # beyond 11 dB's linear 2450 mV
    try:
        sensors.build(cfg)
        raise AssertionError("calibration outside the linear range accepted")
    except ValueError:
        pass


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


def test_virtual_propane_board_reads_the_world_through_the_hx711_driver():
    cfg = _cfg("virtual-propane")
    cfg["world"].update({"speed": 0, "ctl": None, "noise": 0})
    w = hal_sim.world(cfg)
    try:
        s = sensors.build(cfg)
        s.setup()
        g = s.read()
        assert abs(g - (10600 + 8000)) < 2, g          # platform: bottle tare + gas
        assert w.command("sensor stuck") and s.read() is None    # DOUT held low
        assert w.command("sensor float") and s.read() is None    # pulled up: busy
        assert w.command("sensor ok") and abs(s.read() - 18600) < 2
    finally:
        hal_sim.chips.clear()
        hal_sim.set_world(None)
