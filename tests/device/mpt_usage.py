# firmware/usage.py: monotonic consumed counter across refills, restarts and checkpoints.
# runtimes: micropython cpython
from firmware.usage import Usage
from protocol import messages as M


def test_counts_increases_in_milli_units():
    u = Usage()
    u.update(0)
    for i in range(1, 1001):
        u.update(i * 4 // 10)     # the estimator's milli-unit total, an int
    assert u.milli == 400, u.milli
    assert u.payload(3) == {0: M.USAGE, 1: 400, 2: 3}
    M.validate(u.payload(3))


def test_monotonic_across_estimator_restart_and_checkpoint():
    u = Usage()
    u.update(10000)
    u.update(12500)
    st = u.state()
    u2 = Usage(st)                # reboot, estimator restored to the same checkpoint
    u2.update(12500)
    u2.update(13000)
    assert u2.milli == 3000
    u3 = Usage(u2.state())        # cold start: the estimator's total restarts at 0
    u3.update(0)
    assert u3.milli == 3000
    u3.update(250)
    assert u3.milli == 3250
    u3.update(100)                # never goes down
    assert u3.milli == 3250


def test_state_of_firmware_0_3_is_converted():
    # 0.3.0 kept the anchor in units (a float): read as milli-units it would count a
    # jump of 999 x the anchor
    u = Usage({"m": 5000, "b": 4000, "a": 1.5, "r": 7})
    assert u.update(1500) == 5000
    assert u.update(1750) == 5000 and u.update(2600) == 5100


def test_due_daily():
    u = Usage()
    assert u.due(0, 86400)
    u.reported(100)
    assert not u.due(86499, 86400) and u.due(86500, 86400)
