# Scenario benchmark of firmware/estimator.py against two baselines.
#   MICROPYPATH=. .venv/bin/micropython -X heapsize=64K tests/benchmarks/bench_estimator.py
#   .venv/bin/python tests/benchmarks/bench_estimator.py
# Error per evaluated sample: |predicted empty time - true empty time| / true remaining time,
# at every 30-minute sample once >= 20 % of capacity was used in the current episode.
# Baselines get the true refill times (oracle) and use the raw latest reading as remaining.
import gc
import sys

# the estimator first: compiling it from source is the heap peak under 64K
_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
try:
    from firmware.estimator import Estimator
except ImportError:  # CPython without the repo root on the path
    sys.path.insert(0, _here + "/../..")
    from firmware.estimator import Estimator
gc.collect()
sys.path.insert(0, _here)
import estimator_sim as sim  # noqa: E402
gc.collect()
import estimator_score as score  # noqa: E402


def pct(x):
    if x is None:
        return "    -"
    return "%5.1f" % (100 * x) if x >= 0.001 else "  0.0"


def ratio(b, a):
    if a is None or b is None:
        return "   -"
    if a < 1e-4:
        return " inf" if b >= 1e-4 else "   -"
    return "%4.1f" % (b / a)


def line(name, s):
    o = (s.ours.quantile(0.5), s.ours.quantile(0.9))
    nv = (s.naive.quantile(0.5), s.naive.quantile(0.9))
    t7 = (s.t7.quantile(0.5), s.t7.quantile(0.9))
    cov = s.inband / (s.n - s.none) if s.n > s.none else 0.0
    print("%-9s %5d | %s %s | %s %s | %s %s | %s %s | %5.1f %4d | %6.0f" % (
        name, s.n, pct(o[0]), pct(o[1]), pct(nv[0]), pct(nv[1]), pct(t7[0]), pct(t7[1]),
        ratio(nv[0], o[0]), ratio(t7[0], o[0]), 100 * cov, s.none,
        s.us / s.updates if s.updates else 0))
    return o, nv, t7, cov


def main():
    impl = sys.implementation.name
    print("Depletion estimator benchmark on %s  (capacity %g, %g/day, sample every %d min)"
          % (impl, sim.CAP, sim.RATE, sim.STEP // 60))
    print("sensor noise +-0.5 % FS in every scenario, +-2 % in noise/mix; baselines get the "
          "true refill times")
    print("errors in % of true remaining time; quantiles from a log histogram (+-3 % rel)")
    print("%-9s %5s | %11s | %11s | %11s | %9s | %10s | %6s" % (
        "scenario", "n", "ours med p90", "naive m p90", "trail7 m p90", "x naive x7d",
        "band80% none", "us/upd"))
    tot = score.Score()
    for spec in sim.SCENARIOS:
        gc.collect()
        s = score.run(spec, Estimator, seed=1)
        line(spec[0], s)
        tot.merge(s)
    print("-" * 96)
    o, nv, t7, cov = line("overall", tot)
    print("overall median: ours %.2f %%, naive %.2f %%, trailing-7d %.2f %%; "
          "ours is %.1fx better than naive, %.1fx better than trailing-7d; band80 coverage %.1f %%"
          % (100 * o[0], 100 * nv[0], 100 * t7[0], nv[0] / max(o[0], 1e-4),
             t7[0] / max(o[0], 1e-4), 100 * cov))
    print("time per update on %s: %.0f us" % (impl, tot.us / tot.updates))
    ok = o[0] <= 0.10 and nv[0] >= 2 * o[0] and t7[0] >= 2 * o[0] and nv[0] > 0 and t7[0] > 0
    print("target (median <= 10 %% and >= 2x both baselines): %s" % ("MET" if ok else "NOT MET"))


main()
