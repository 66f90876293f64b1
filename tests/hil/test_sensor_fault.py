"""A load cell's HX711 dies on the virtual board and comes back (boards/virtual-propane.json:
the real HX711 driver bit-bangs a chip model, firmware/sensors/simhx711.py, whose input is
the simulated world's propane).

A dead or unpowered HX711 holds DOUT low: 24 zero bits read as 0 g, an empty bottle. At
consent "automatic" that would order gas because a sensor died. The run checks, end to
end, what the supplier sees: no automatic order on a reading the driver cannot vouch for,
exactly one sensor_fault, and once the chip is back the forecast resumes without a
spurious refill or empty.

    .venv/bin/python -m pytest -q -s tests/hil/test_sensor_fault.py
"""
import time

import pytest

from host_tools.rig import Rig, events

pytestmark = pytest.mark.hil

FAULT_S = 8     # real seconds of dead sensor: ~44 simulated hours at speed 20000


@pytest.fixture
def virtual_only(request):
    if request.config.getoption("--port"):
        pytest.skip("the dead chip is simulated: virtual board only")


def _chip(rig, mode):
    """The world's control file on the board's flash (firmware/sensors/simctl.py)."""
    with open(rig.work / "flash" / "ctl", "a") as f:
        f.write("sensor %s\n" % mode)


def _forecasts(ms, after=-1):
    return [m for m in ms if m["type"] == "level" and m["seq"] > after and m.get("tte_h") is not None]


@pytest.mark.parametrize("mode", ["stuck", "float"])
def test_dead_hx711_orders_nothing_reports_once_and_recovers(virtual_only, tmp_path, mode):
    rig = Rig(tmp_path / "rig", board="virtual-propane", device_id="gas-01", consent=4,
              speed=20000, seed=5)
    rig.start()
    try:
        before = rig.wait_for(lambda ms: _forecasts(ms)[3:], 120, "a forecast before the fault")[-1]
        _chip(rig, mode)
        fault = rig.wait_for(lambda ms: events(ms, "sensor_fault"), 60, "the sensor_fault")[0]
        time.sleep(FAULT_S)
        last = rig.messages()[-1]["seq"]
        _chip(rig, "ok")
        after = rig.wait_for(lambda ms: _forecasts(ms, last)[3:], 90,
                             "the forecast after the sensor came back")[-1]
        time.sleep(2)
        msgs = rig.messages()
        autos = [m for m in events(msgs, "order_request") if m.get("trigger") == 1]
        levels = [m for m in msgs if m["type"] == "level"]
        print("TALLY sensor_fault mode=%s before=%dg after=%dg faults=%d autos=%d refills=%d "
              "min_level=%dg levels=%d" % (mode, before["remaining"], after["remaining"],
                                           len(events(msgs, "sensor_fault")), len(autos),
                                           len(events(msgs, "refill_detected")),
                                           min(m["remaining"] for m in levels), len(levels)))
        assert len(events(msgs, "sensor_fault")) == 1, events(msgs, "sensor_fault")
        assert fault["seq"] > before["seq"]
        assert not autos, autos                                 # never ordered on a dead sensor
        assert not events(msgs, "refill_detected")              # nor saw a refill when it came back
        assert min(m["remaining"] for m in levels) > 0.5 * before["remaining"]   # nor an empty
        # the forecast resumes where the gas really is: ~300 g/day went on meanwhile
        assert 0 < before["remaining"] - after["remaining"] < 1500, (before, after)
        assert after["tte_h"] > 96                              # weeks of gas, no order due
    finally:
        rig.stop()
