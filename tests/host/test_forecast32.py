"""The forecast benchmark (tests/benchmarks/bench_forecast.py) on the ESP32-shaped
MicroPython (32-bit, float32) against the 64-bit port (doubles), same seeds: the
estimator's and the order rules' figures stay within a stated tolerance of the
double-precision run. Tolerance: 1.5 points of median error, 5 points of band coverage,
and the risk rule's stock-out hours and median level at arrival within 24 h and 2 points
(float32 rounding moves a bucket close or an order by a sample, and a closed loop carries
that on)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mputil import ROOT, micropython_bin, mp32_cmd  # noqa: E402

FAMS = "heating_dd,step_up,gauge10,loadcell,deepsleep"


def _start(cmd):
    env = {"MICROPYPATH": "%s:%s/tests/benchmarks" % (ROOT, ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.Popen(cmd + ["-X", "heapsize=4M", str(ROOT / "tests/benchmarks/bench_forecast.py"),
                                   "1", FAMS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=str(ROOT))


def _result(p):
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    line = [x for x in out.splitlines() if x.startswith("overall")][0]
    nums = [float(x) for x in re.findall(r"-?\d+\.?\d*", line)]
    # overall n | med p90 | naive | t7 | band | risk h arr% | ...
    return {"med": nums[1], "band": nums[7], "risk_h": nums[8], "risk_arr": nums[9]}, out


def test_float32_within_tolerance_of_doubles():
    m32 = mp32_cmd()
    if m32 is None:
        pytest.skip("ESP32-shaped MicroPython not built: run tests/mp32/setup")
    # both ports at once (one core each): the suite's longest host test, halved
    p64, p32 = _start([str(micropython_bin())]), _start(m32)
    try:
        a, out64 = _result(p64)
        b, out32 = _result(p32)
    finally:
        for p in (p64, p32):     # the other one, when one failed
            if p.poll() is None:
                p.kill()
                p.wait()
    print(out64, out32)
    assert abs(a["med"] - b["med"]) <= 1.5, (a, b)
    assert abs(a["band"] - b["band"]) <= 5, (a, b)
    assert abs(a["risk_h"] - b["risk_h"]) <= 24, (a, b)
    assert abs(a["risk_arr"] - b["risk_arr"]) <= 2, (a, b)
