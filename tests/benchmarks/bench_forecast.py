# Forecast and automatic-order benchmark on the scenario suite (tests/benchmarks/forecast_sim.py).
#   .venv/bin/python tests/benchmarks/bench_forecast.py [seeds [family,family...|all [risk_pm]]]
#   (default 10 seeds, all families, the risk rule at 20 per mille = 2 %, the default;
#   one seed is one customer, and their coverages differ widely: 59-96 % in one family)
#   MICROPYPATH=.:tests/benchmarks .venv/bin/micropython -X heapsize=4M tests/benchmarks/bench_forecast.py 1
# Per family and overall, from closed loops (an order arrives after a drawn lead time and
# fills the container):
#   forecast  median / p90 of |predicted - true empty time| / true remaining time, at every
#             sample once >= 20 % of the episode's capacity is used; naive two-point slope
#             and trailing-7-day average beside it (both told the true refill times);
#             band: how often the 80 % band holds the true empty time (target 70-90 %)
#   orders    three rules, each its own closed loop: risk (the device's policy.Policy:
#             P(empty before the box arrives) > 2 %, lead time and spread known), today (point
#             forecast < lead + 24 h margin), rop15 (reading < 15 % of capacity);
#             'empty h' = hours out of stock, 'arr%' = median level when a box arrives
#   step      step families: median error 7-14 days after the step, ours vs trailing-7
import gc
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
try:
    from firmware.estimator import Estimator
except ImportError:  # CPython without the repo root on the path
    sys.path.insert(0, _here + "/../..")
    from firmware.estimator import Estimator
from firmware.policy import Policy  # noqa: E402
from protocol import messages as M  # noqa: E402
from firmware import weather  # noqa: E402
gc.collect()
sys.path.insert(0, _here)
from estimator_sim import Rng  # noqa: E402
from estimator_score import Hist, Naive, Trailing7, err, ticks_diff, ticks_us  # noqa: E402
from forecast_sim import DAY, FAMILIES, ORDER, T0, Scenario, gauss  # noqa: E402

RULES = ("risk", "today", "rop15")


def weather_feed(sc, est, i, rng):
    # the weather downlink, once a day: the days from yesterday on (yesterday and today
    # observed, 14 days forecast, their error growing 0.7 C a day of lead), then 8 weekly
    # normals; encoded as the bridge sends it (protocol/SPEC.md: (C + 60) * 2)
    t = T0 + i * sc.dt
    if i and t // DAY == (t - sc.dt) // DAY:
        return          # the first sample of a day only
    d = (i * sc.dt) // DAY
    daily = []
    for j in range(-1, 15):
        x = sc.temp[max(d + j, 0)]
        if j > 0:
            x += 0.7 * j * gauss(rng)
        daily.append(int((x + 60) * 2 + 0.5))
    normals = []
    for w in range(8):
        k = min(d + 15 + 7 * w, len(sc.normal) - 7)
        normals.append(int((sum(sc.normal[k:k + 7]) / 7 + 60) * 2 + 0.5))
    est.weather({0: 22, 1: t // DAY - 1, 2: daily, 3: normals})


def play(sc, rule, cfg, fam=None):
    """One closed loop of scenario sc under an order rule. Returns (stock-out s, [level
    at each arrival / capacity], orders, us in update, updates, times it ran empty); with
    fam (a FamScore) also scores the forecast at every sample."""
    dd = FAMILIES[sc.family].get("weather")
    est = (Estimator if dd is None else weather.Estimator)(sc.cap)
    wrng = Rng(sc.seed * 77 + 5)
    cap, dt = sc.cap, sc.dt
    rng = Rng(sc.seed * 31 + 17)
    L = cap
    arrivals = []       # when the boxes ordered and not yet here arrive, soonest first
    k = 0
    pol = None
    if rule == "risk":  # the device's own policy decides (firmware/policy.py)
        sent = []
        pol = Policy("bench", None, cfg, sent.append, None, M.CONSENT_AUTOMATIC)
    ordered_ep = -1
    ep = used = 0
    out = 0.0
    empties = 0
    levels = []
    us = 0
    nv = Naive() if fam else None
    t7 = Trailing7(step=dt) if fam else None
    step_d = FAMILIES[sc.family].get("step_day")
    for i in range(sc.n):
        t = T0 + i * dt
        while arrivals and t >= arrivals[0]:
            levels.append(L / cap)
            L = cap
            arrivals.pop(0)
            ep += 1
            used = 0
        tu = sc.topups.get(i)
        if tu:
            L = min(cap, L + tu)
            ep += 1
            used = 0
        q = sc.reading(i, L, rng)
        if dd:
            weather_feed(sc, est, i, wrng)
        a = ticks_us()
        est.update(t, q)
        us += ticks_diff(ticks_us(), a)
        tte = est.tte()
        if fam:
            nv.update(t, q, ep)
            t7.update(t, q, ep)
            if used >= 0.2 * cap and L > 0:
                te = sc.empty_at(i, L)
                if te is not None and T0 + te * dt > t:   # (empties within this step: not scored)
                    te = T0 + te * dt
                    tr = te - t
                    fam.n += 1
                    if tte is None:
                        fam.none += 1
                        e = 1.0
                    else:
                        e = err(t + tte[0], te, t)
                        if tte[1] <= tr and (tte[2] is None or tr <= tte[2]):
                            fam.inband += 1
                    fam.ours.add(e)
                    e7 = err(t7.pred_empty(t), te, t)
                    fam.naive.add(err(nv.pred_empty(t), te, t))
                    fam.t7.add(e7)
                    if step_d is not None and step_d + 7 <= i * dt / DAY < step_d + 14:
                        fam.s_ours.add(e)
                        fam.s_t7.add(e7)
        if pol:
            n = len(sent)
            pol.assess(est.episode, tte)
            if any(p[1] == M.EV_ORDER_REQUEST for p in sent[n:]):
                arrivals.append(t + sc.lead_s(k))
                arrivals.sort()
                k += 1
        elif not arrivals and ordered_ep != est.episode:
            if rule == "rop15":
                go = q is not None and q < 0.15 * cap
            elif tte is None:
                go = False
            else:
                go = tte[0] < (cfg["lead_time_h"] + 24) * 3600
            if go:
                arrivals.append(t + sc.lead_s(k))
                k += 1
                ordered_ep = est.episode
        u = sc.demand[i]
        if L <= 0:
            out += dt
        elif u > L:
            out += dt * (1 - L / u)
            L = 0.0
            empties += 1
        else:
            L -= u
        used += u
    return out, levels, k, us, sc.n, empties


class FamScore:
    def __init__(self):
        self.ours, self.naive, self.t7 = Hist(), Hist(), Hist()
        self.s_ours, self.s_t7 = Hist(), Hist()
        self.n = self.none = self.inband = 0
        self.out = [0.0, 0.0, 0.0]       # stock-out seconds per rule
        self.arr = [[], [], []]          # arrival levels per rule
        self.orders = [0, 0, 0]
        self.empties = [0, 0, 0]         # times the container ran empty, per rule
        self.us = self.updates = 0

    def merge(self, o):
        for a, b in ((self.ours, o.ours), (self.naive, o.naive), (self.t7, o.t7),
                     (self.s_ours, o.s_ours), (self.s_t7, o.s_t7)):
            a.merge(b)
        self.n += o.n
        self.none += o.none
        self.inband += o.inband
        for r in range(3):
            self.out[r] += o.out[r]
            self.arr[r] += o.arr[r]
            self.orders[r] += o.orders[r]
            self.empties[r] += o.empties[r]
        self.us += o.us
        self.updates += o.updates


def median(xs):
    if not xs:
        return None
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def pct(x):
    return "    -" if x is None else "%5.1f" % (100 * x)


def line(name, s):
    cov = s.inband / (s.n - s.none) if s.n > s.none else 0.0
    r = ""
    for j in range(3):
        r += " | %6.0f %5s" % (s.out[j] / 3600, pct(median(s.arr[j])))
    st = ""
    if s.s_ours.n:
        st = " | %s %s" % (pct(s.s_ours.quantile(0.5)), pct(s.s_t7.quantile(0.5)))
    print("%-9s %5d | %s %s | %s %s | %s %s | %5.1f%s%s" % (
        name, s.n, pct(s.ours.quantile(0.5)), pct(s.ours.quantile(0.9)),
        pct(s.naive.quantile(0.5)), pct(s.naive.quantile(0.9)),
        pct(s.t7.quantile(0.5)), pct(s.t7.quantile(0.9)), 100 * cov, r, st))
    return cov


def main():
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    fams = sys.argv[2].split(",") if len(sys.argv) > 2 and sys.argv[2] != "all" else ORDER
    risk = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    impl = sys.implementation.name
    print("Forecast + order benchmark on %s, %d seeds per family, errors in %% of the true "
          "remaining time; risk rule at %.1f %%" % (impl, seeds, risk / 10))
    print("%-9s %5s | %11s | %11s | %11s | %5s | %12s | %12s | %12s | %s" % (
        "family", "n", "ours med p90", "naive m p90", "trail7 m p90", "band",
        "risk empty h arr%", "today empty h arr%", "rop15 empty h arr%", "step+7d ours t7"))
    tot = FamScore()
    covs = []
    for fname in fams:
        fs = FamScore()
        for seed in range(1, seeds + 1):
            sc = Scenario(fname, seed)
            lead, sd = sc.lead
            cfg = {"lead_time_h": lead / 3600, "lead_sd_h": sd / 3600, "margin_h": 0,
                   "risk_pm": risk, "sample_s": sc.dt}
            for j, rule in enumerate(RULES):
                o, lv, k, us, nu, ne = play(sc, rule, cfg, fs if j == 0 else None)
                fs.empties[j] += ne
                fs.out[j] += o
                fs.arr[j] += lv
                fs.orders[j] += k
                if j == 0:
                    fs.us += us
                    fs.updates += nu
            del sc
            gc.collect()
        covs.append(line(fname, fs))
        tot.merge(fs)
    print("-" * 140)
    line("overall", tot)
    print("band coverage per family: min %.1f %%, max %.1f %% (target 70-90 %%)"
          % (100 * min(covs), 100 * max(covs)))
    print("orders placed: risk %d, today %d, rop15 %d; stock-out hours: risk %.0f, today %.0f, "
          "rop15 %.0f" % tuple(tot.orders + [x / 3600 for x in tot.out]))
    # a calibrated risk rule runs empty about as often as it asks: ~risk x orders, not 0
    print("times run empty: risk %d (%.1f %% of its orders, %.1f %% asked), today %d, rop15 %d"
          % (tot.empties[0], 100 * tot.empties[0] / max(1, tot.orders[0]), risk / 10,
             tot.empties[1], tot.empties[2]))
    print("time per update on %s: %.0f us" % (impl, tot.us / tot.updates))


main()
