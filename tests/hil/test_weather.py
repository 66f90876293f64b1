"""A weather downlink end to end: `consumables send DEV weather ...` queued in the store, the
bridge delivers it on the board's serial line, and the propane board's estimator becomes
the degree-day one (firmware/weather.py), checkpointed as such (13 entries), reporting on."""
import json
import time

import pytest

from host_tools.rig import Rig


def _estimator_entries(rig):
    try:
        return len(json.loads((rig.work / "flash" / "state" / "est.json").read_text())["est"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def test_a_weather_downlink_makes_a_propane_board_learn_degree_days(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("virtual board only")
    with Rig(tmp_path / "rig", board="virtual-propane", speed=20000, seed=4, device_id="tank-01",
             consent=4) as r:
        r.wait_for(lambda m: len([x for x in m if x["type"] == "level"]) >= 2, timeout=90,
                   what="level reports")
        assert 0 < _estimator_entries(r) <= 12      # the plain estimator, until the weather comes
        today = time.strftime("%Y-%m-%d", time.gmtime())
        assert r.send("weather", today, "-3,-1.5,0,2,4,1,-2", "-4,-5,-3") == 0
        end = time.monotonic() + 60
        while _estimator_entries(r) <= 12 and time.monotonic() < end:
            time.sleep(0.5)
        assert _estimator_entries(r) > 12, "the board's checkpoint never became a degree-day one"
        n = len(r.messages())
        r.wait_for(lambda m: len(m) >= n + 3, timeout=60, what="reports after the conversion")
        assert r.vboard.crashes == []
