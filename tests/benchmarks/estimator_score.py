# Baselines, error histogram and the scenario runner for the depletion-estimator benchmark.
# (Split from estimator_sim.py: each module must compile inside a 64K MicroPython heap.)
from array import array
from math import log

from estimator_sim import CAP, DAY, STEP, Scenario

class Naive:
    """Two-point slope: first reading of the episode and the latest one.

    Given the TRUE episode boundaries (oracle refill detection): generous to the baseline.
    """

    def __init__(self):
        self.ep = -1
        self.t0 = self.q0 = self.t = self.q = None

    def update(self, t, q, ep):
        if ep != self.ep:
            self.ep = ep
            self.t0 = None
        if q is None:
            return
        if self.t0 is None:
            self.t0, self.q0 = t, q
        self.t, self.q = t, q

    def pred_empty(self, now):
        if self.t0 is None or self.t <= self.t0:
            return None
        r = (self.q0 - self.q) / (self.t - self.t0)
        if r <= 0:
            return None
        return self.t + self.q / r


class Trailing7:
    """Average rate over the trailing 7 days (oldest reading >= 7 days back in the episode),
    remaining = latest reading. Oracle episode boundaries as for Naive."""

    def __init__(self, span=7 * DAY, step=STEP):
        self.span = span
        n = span // step + 8
        self.n = n
        self.bt = array("f", bytes(4 * n))  # seconds since the first reading
        self.bq = array("f", bytes(4 * n))
        self.head = self.cnt = 0
        self.ep = -1
        self.t0 = None

    def update(self, t, q, ep):
        if ep != self.ep:
            self.ep = ep
            self.cnt = 0
        if q is None:
            return
        if self.t0 is None:
            self.t0 = t
        t -= self.t0
        self.bt[self.head] = t
        self.bq[self.head] = q
        self.head = (self.head + 1) % self.n
        if self.cnt < self.n:
            self.cnt += 1
        # drop readings older than the span, but keep one at/beyond it as the anchor
        while self.cnt > 2 and self.bt[(self.head - self.cnt + 1) % self.n] <= t - self.span:
            self.cnt -= 1

    def pred_empty(self, now):
        if self.cnt < 2:
            return None
        i0 = (self.head - self.cnt) % self.n
        i1 = (self.head - 1) % self.n
        dt = self.bt[i1] - self.bt[i0]
        r = (self.bq[i0] - self.bq[i1]) / dt if dt > 0 else 0.0
        if r <= 0:
            return None
        return self.t0 + self.bt[i1] + self.bq[i1] / r


class Hist:
    """Log-spaced histogram of relative errors: quantiles in fixed memory.

    40 bins per decade from 1e-4 to 1e2 (bin width 5.9 %, interpolated inside the bin);
    errors below 1e-4 fall into bin 0 and are reported as 0.
    """
    PER_DEC = 40
    LO = -4
    NB = 6 * 40 + 2

    def __init__(self):
        self.h = array("H", bytes(2 * self.NB))  # counts < 65536 per histogram
        self.n = 0

    def add(self, x):
        if x < 1e-4:
            b = 0
        else:
            b = int((log(x) / 2.302585093 - self.LO) * self.PER_DEC) + 1
            if b >= self.NB:
                b = self.NB - 1
        self.h[b] += 1
        self.n += 1

    def merge(self, o):
        for i in range(self.NB):
            self.h[i] += o.h[i]
        self.n += o.n

    def quantile(self, p):
        if not self.n:
            return None
        want = p * self.n
        acc = 0
        for b in range(self.NB):
            c = self.h[b]
            if acc + c >= want and c:
                if b == 0:
                    return 0.0
                f = (want - acc) / c
                e = self.LO + (b - 1 + f) / self.PER_DEC
                return 10.0 ** e
            acc += c
        return 10.0 ** (self.LO + (self.NB - 2) / self.PER_DEC)


def err(pred, te, now):
    """|predicted - true empty time| / true remaining time; a missing prediction = 100 %."""
    if pred is None:
        return 1.0
    d = pred - te
    if d < 0:
        d = -d
    return d / (te - now)


class Score:
    def __init__(self):
        self.ours = Hist()
        self.naive = Hist()
        self.t7 = Hist()
        self.inband = 0
        self.none = 0
        self.n = 0
        self.us = 0       # total microseconds inside Estimator.update
        self.updates = 0

    def merge(self, o):
        self.ours.merge(o.ours)
        self.naive.merge(o.naive)
        self.t7.merge(o.t7)
        self.inband += o.inband
        self.none += o.none
        self.n += o.n
        self.us += o.us
        self.updates += o.updates


try:
    from time import ticks_us, ticks_diff
except ImportError:  # CPython
    from time import perf_counter

    def ticks_us():
        return int(perf_counter() * 1e6)

    def ticks_diff(a, b):
        return a - b


def run(spec, make_estimator, seed=1, days=None):
    """Run one scenario through the estimator and both baselines; return a Score."""
    sc = Scenario(spec, seed, days)
    est = make_estimator(CAP)
    nv = Naive()
    t7 = Trailing7()  # (a fresh one per scenario; old ones are garbage by now)
    s = Score()
    for i, t, q, ep, te, ev in sc.samples():
        a = ticks_us()
        est.update(t, q)
        s.us += ticks_diff(ticks_us(), a)
        s.updates += 1
        nv.update(t, q, ep)
        t7.update(t, q, ep)
        if not ev:
            continue
        s.n += 1
        r = est.tte()
        if r is None:
            s.none += 1
            s.ours.add(1.0)
        else:
            s.ours.add(err(t + r[0], te, t))
            tr = te - t
            if r[1] <= tr and (r[2] is None or tr <= r[2]):
                s.inband += 1
        s.naive.add(err(nv.pred_empty(t), te, t))
        s.t7.add(err(t7.pred_empty(t), te, t))
    return s
