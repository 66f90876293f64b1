# runtimes: micropython cpython
# heapsize: 96K  (64-bit compiling estimator.py from source; the agent's 64 KB budget is test_memory32's, on the 32-bit port)
# Usage metering in the estimator (firmware/estimator.py consumed_milli) and the
# migration of firmware 0.3.0's checkpoint, exact on float32 boards.
import gc

gc.collect()  # compiling the estimator from source is the heap peak of this file
from firmware.estimator import Estimator  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
from array import array  # noqa: E402
from firmware import store  # noqa: E402

T0 = 1700000000
STEP = 1800
CAP = 100.0


def _feed(e, n, rate):
    for i in range(n):
        e.update(T0 + i * STEP, CAP - rate * i / 48)


def test_metering_exact_after_a_large_total():
    # after 30,000 units metered (a year of a 2,500-unit tank), 0.4 unit used in 1,000
    # steps of 0.0004 is still 400 milli-units: a float32 total (ulp 0.002 there) would
    # not move at all, and a float32 sum of the steps truncates to 399
    e = Estimator(CAP)
    e.update(T0, 1000.0)
    e.consumed = 30000 * 1000
    for i in range(1, 1001):
        L = 1000.0 - i * 0.0004
        e._ratchet(L)
    got = e.consumed_milli() - 30000 * 1000
    assert 399 <= got <= 400, (got, L)     # what is not counted yet is < 1 milli-unit


def test_v3_checkpoint_migrated():
    from binascii import a2b_base64, b2a_base64
    e = Estimator(CAP)
    _feed(e, 300, 4.0)
    buf = io.StringIO()
    store.dump(e.state(), buf)
    st = json.loads(buf.getvalue())
    old = st[:6] + st[7:]              # firmware 0.3.0's layout: no int total ...
    old[0] = 3
    sl = array("d", a2b_base64(old[6]))
    sl[20] = e.consumed_milli() / 1000  # ... but the float total, in units, in slot 20
    old[6] = b2a_base64(bytes(sl)).decode().strip()
    from firmware import assemble      # boot-only code migrates it
    f = assemble.estimator(old, {})
    assert abs(f.consumed_milli() - e.consumed_milli()) <= 1, (f.consumed_milli(), e.consumed_milli())
    assert f.tte() == e.tte() and f.episode == e.episode
    g = assemble.estimator([2] + old[1:], {"consumable": {"unit": "g", "capacity": 77}})
    assert g.capacity == 77 and g.consumed_milli() == 0   # unknown: a fresh estimator


