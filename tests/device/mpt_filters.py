# runtimes: micropython cpython
# Filter chain: median, EMA, outlier rejection with step confirmation, quality.
from firmware import filters

CFG = [{"type": "median", "n": 5}, {"type": "outlier", "max_jump": 0.1},
       {"type": "ema", "alpha": 0.3}]


def test_median_removes_spike():
    m = filters.Median(5)
    out = [m.update(x) for x in (10, 12, 500, 11, 13)]
    assert out[-1] == 12 and max(out) < 300, out
    assert m.update(14) == 13


def test_ema_converges():
    e = filters.Ema(0.5)
    assert e.update(10) == 10
    assert e.update(20) == 15
    try:
        filters.Ema(0)
        raise AssertionError("alpha 0 accepted")
    except ValueError:
        pass


def test_outlier_rejects_spikes_accepts_refill():
    o = filters.Outlier(full_scale=3000, max_jump=0.1, confirm=3)
    for x in (2000, 1990, 1985):
        assert o.update(x) == x
    assert o.update(2900) is None        # a spike
    assert o.update(100) is None         # another, disagreeing
    assert o.update(1980) == 1980
    # refill: three agreeing readings near full -> accepted as a step
    assert o.update(2995) is None
    assert o.update(3000) is None
    assert o.update(2990) == 2990 and o.stepped
    assert o.update(2985) == 2985


def test_chain_from_config_and_quality():
    c = filters.build(CFG, full_scale=3000)
    assert len(c.stages) == 3
    v = None
    for i in range(20):
        v = c.update(2000 - i)
    assert abs(v - 1985) < 10, v
    assert c.quality() == 10
    # dropouts and a spike lower the score
    for x in (None, None, 2900, 1979):
        c.update(x)
    assert c.quality() == 7, c.quality()


def test_chain_step_resets_later_stages():
    c = filters.build(CFG, full_scale=3000)
    for _ in range(10):
        c.update(500)
    out = [c.update(3000) for _ in range(8)]
    assert out[-1] == 3000, out          # EMA restarted at the new level, no slow ramp
    assert c.quality() >= 5


def test_noisy_quality_is_lower():
    c = filters.build(CFG, full_scale=1000)
    x = 1
    for i in range(10):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        c.update(500 + (x % 121) - 60)   # +-6 % of full scale
    q = c.quality()
    assert 3 <= q <= 8, q


def test_unknown_filter_type():
    try:
        filters.build([{"type": "kalman"}])
        raise AssertionError("unknown filter accepted")
    except ValueError as e:
        assert "kalman" in str(e)
