# The virtual board's world across power cuts (firmware/sensors/simstate.py), and
# the emulated full flash ("flash N"): the agent's store writes fail with ENOSPC.
# heapsize: 128K
import sys
if sys.implementation.name != "micropython":
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
import os
import time

from firmware import store
from firmware.sensors.simworld import World
from mptutil import rmtree, scratch


CFG = {"seed": 3, "capacity": 3000, "rate_per_day": 100, "jitter": 0, "ctl": None, "speed": 36000}


def test_world_survives_a_power_cut_without_a_refill():
    d = scratch("sw")
    cfg = dict(CFG, state=d + "/world.bin")
    w = World(cfg)
    assert w.command("level 1200") and w.command("rate 300")
    time.sleep_ms(50)
    t1, q1 = w.now(), w.level()
    # power cut: the process dies, a new World boots from the same flash
    time.sleep_ms(100)
    w2 = World(cfg)
    t2, q2 = w2.now(), w2.level()
    assert t2 >= t1 + 0.1 * 36000 * 0.9, (t1, t2)     # time went on while the power was off
    # still ~1200, not a fresh 3000: at most what the day's busiest hours could use in the
    # time that went by (the real gap is longer on a loaded machine: the bound follows it)
    used = 300 * (t2 - t1) / 86400
    assert q2 <= q1 and q1 - q2 < 50 + 4 * used, (q1, q2, t1, t2)
    assert w2.rate == 300 and w2.refill_count == 0
    # a board restarted with another speed takes the new one, at about the level left.
    # (Either way: w3 starts from w2's last save, and w2 may have run on a little after
    # it, at 36000x, when q2 was read; now() counts from each one's power-on)
    w3 = World(dict(cfg, speed=100))
    used = 300 * abs(w3.now() - t2) / 86400
    assert w3.speed == 100 and abs(q2 - w3.level()) < 50 + 4 * used, (q2, w3.level(), used)
    # without a state file every boot is a fresh world (the old behaviour). The clock is
    # stopped (speed 0) for these: at 36000x a loaded machine's 25 ms use up one unit
    assert World(dict(CFG, speed=0)).level() == 3000
    # an unreadable state file (another format, truncated) starts a fresh world, saved anew
    for junk in ('{"w": 1, "s": 2}', "x" * 200, ""):
        with open(cfg["state"], "w") as f:
            f.write(junk)
        w4 = World(dict(cfg, speed=0))
        assert w4.level() == 3000 and w4.rate == 100 and w4.refill_count == 0
        assert World(dict(cfg, speed=0)).level() == 3000   # and the file it wrote reads back
    rmtree(d)


def test_world_state_keeps_refills_noise_and_manual_clock():
    d = scratch("sw")
    cfg = dict(CFG, state=d + "/world.bin", speed=0, refills=[1, 3], refill_after_days=2)
    w = World(cfg)
    w.advance(2 * 86400)
    assert w.level() > 2890 and w.refill_count == 1   # refilled at day 1, one day used since
    assert w.command("noise 0.1") and w.command("dropout 0.5") and w.command("level 700")
    w2 = World(cfg)
    assert w2.now() == 2 * 86400 and w2.level() == 700 and w2.refill_count == 1 and w2.rate == 100
    assert [w2.read_sensor() is None for _ in range(8)] == [w.read_sensor() is None for _ in range(8)]
    w2.advance(86400)                      # day 3: the refill after the cut still comes
    assert w2.level() > 2990 and w2.refill_count == 2
    rmtree(d)


def test_flash_command_fills_the_flash():
    d = scratch("sw")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        w = World(dict(CFG))
        w.command("flash 100")
        store.save("a.json", {"v": "x" * 40})
        try:
            store.save("b.json", {"v": "y" * 80})
            raise AssertionError("expected ENOSPC")
        except OSError as e:
            assert e.args[0] == 28
        assert sorted(os.listdir(".")) == ["a.json"]     # no torn tmp left behind
        w.command("flash")                               # space again
        store.save("b.json", {"v": "y" * 80})
        assert store.load("b.json") == {"v": "y" * 80}
    finally:
        w.command("flash")
        os.chdir(cwd)
    rmtree(d)
