# runtimes: micropython cpython
# heapsize: 96K  (64-bit compiling estimator.py and this file from source)
# The estimator's 80 % band over long horizons (firmware/estimator.py tte()): how the
# learnt week-ahead miss scales with the weeks to empty.
import gc
from array import array

gc.collect()
from firmware.estimator import Estimator  # noqa: E402
from mptutil import Rng as _Rng  # noqa: E402

DAY = 86400
T0 = 1700000000
CAP = 100.0


def _coverage(seeds, days, use_of, cap=CAP, every=4):
    # how often the 80 % band holds the true empty time: readings every 6 h, a forecast
    # scored every `every`-th reading once 20 % is used; use_of(rng, day) -> units that day
    inside = n = 0
    for seed in seeds:
        rng = _Rng(seed)
        e = Estimator(cap)
        use = array("f", [use_of(rng, d) for d in range(days)])
        cum = array("f", bytes(4 * (days + 1)))
        for k in range(days):
            cum[k + 1] = cum[k] + use[k]
        gc.collect()
        i = 0
        while cum[i // 4 + 1] < cap - 2:
            d = i // 4
            used = cum[d] + use[d] * (i % 4) / 4
            e.update(T0 + i * 6 * 3600, cap - used + rng.u(-0.2, 0.2))
            if used > 0.2 * cap and i % every == 0:
                k, left = d, cap - used - use[d] * (4 - i % 4) / 4
                te = (4 - i % 4) * 6 * 3600
                while left > 0 and k + 1 < len(use):
                    k += 1
                    te += min(1, left / use[k]) * DAY
                    left -= use[k]
                r = e.tte()
                n += 1
                if r and r[1] <= te and (r[2] is None or te <= r[2]):
                    inside += 1
            i += 1
    return inside / n


def test_independent_weekly_misses_average_out_over_a_long_horizon():
    # a unit that lasts ~4 months, usage x0.5..x1.5 day by day (independent): over the
    # months to empty the daily swings average out (1/n of the week-ahead miss over n
    # weeks), so the band must not stay as wide as a week's miss (it held 91 %)
    cov = _coverage(range(1, 4), 160, lambda rng, d: 0.8 * rng.u(0.5, 1.5))
    assert 0.7 <= cov <= 0.9, cov


def _wander(seed, hours_on, days=18):
    # readings every hour for `days` days, cap 100, 3 a day used in `hours_on` of each day
    # (x0.6..x1.4 from day to day); -> (Q, Q7): the level's wander per day learnt from
    # residuals one bucket apart and a week apart (firmware/estimator.py slots 14, 76)
    rng = _Rng(seed)
    e = Estimator(CAP)
    q = CAP
    for d in range(days):
        f = 3.0 * rng.u(0.6, 1.4) / len(hours_on)
        for h in range(24):
            e.update(T0 + (d * 24 + h) * 3600, q + rng.u(-0.2, 0.2))
            if h in hours_on:
                q -= f
    return e, e._s[14], e._s[76]


def test_a_daily_rhythm_does_not_wander_as_a_random_walk():
    # used only from 08 to 18: from one 6-hour bucket to the next the level strays far
    # from the fitted line, but a week later the rhythm is where it was; used around the
    # clock, day-to-day swings are a random walk and do add up. Only the part that adds up
    # may widen the band as Q x the time to empty does beyond a week
    for seed in (1, 2, 3):
        e, q, q7 = _wander(seed, range(8, 18))
        assert q7 < q / 5, (q, q7)
        d, lo, hi = e.tte()
        e._s[76] = 0                     # unknown: the wander taken as Q all the way
        assert e.tte()[1] < lo and d / lo - 1 > 0.05, (e.tte(), lo)
        e, q, q7 = _wander(seed, range(24))
        assert q7 > q / 2, (q, q7)
