# Scenario simulator, baselines and scoring for the depletion estimator.
# Shared by tests/benchmarks/bench_estimator.py and tests/device/mpt_estimator.py.
# Runs on MicroPython (64K heap) and CPython: fixed arrays, no per-sample lists.
from array import array
from math import log

DAY = 86400
STEP = 1800          # one sample every 30 simulated minutes
PER_DAY = DAY // STEP
CAP = 100.0          # capacity (units); full scale
RATE = CAP / 30.0    # mean usage: a full tank lasts 30 days
T_START = 1700000000 + 3 * 3600  # arbitrary unix time (a Tuesday, 03:00 UTC)


class Rng:
    """xorshift32: small, seeded, identical on both runtimes."""

    def __init__(self, seed):
        self.x = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def u32(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x

    def random(self):
        return self.u32() / 4294967296.0

    def uniform(self, a, b):
        return a + (b - a) * self.random()


# name, bursty, noise (half-width, fraction of FS), spike probability, refill day,
# dropout probability, long gaps [(start day, length days)]
SCENARIOS = (
    ("constant", False, 0.0, 0.0, None, 0.0, ()),
    ("bursty", True, 0.0, 0.0, None, 0.0, ()),
    ("noise", False, 0.02, 0.0, None, 0.0, ()),
    ("spikes", False, 0.0, 0.04, None, 0.0, ()),
    ("refill", False, 0.0, 0.0, 18, 0.0, ()),
    ("dropouts", False, 0.0, 0.0, None, 0.15, ((9, 1.5), (20, 1.0))),
    ("mix", True, 0.02, 0.03, 18, 0.10, ((11, 1.0),)),
)


def _office_factor(t):
    # weekday 08:00-18:00 only; weekly mean of this profile is 1
    d = (t // DAY + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    h = (t % DAY) // 3600
    if d < 5 and 8 <= h < 18:
        return 7.0 / 5.0 * 24.0 / 10.0
    return 0.0


class Scenario:
    """Deterministic scenario: cumulative usage C (pass 1), then readings (pass 2)."""

    def __init__(self, spec, seed=1, days=None):
        (self.name, self.bursty, self.noise, self.spike_p, self.refill_day,
         self.drop_p, self.gaps) = spec
        self.seed = seed
        if days is None:
            days = 62 if self.refill_day else 42
        self.n = days * PER_DAY
        # pass 1: cumulative consumption at each sample time (float32 is plenty here)
        rng = Rng(seed * 7 + 3)
        C = array("f", [0.0] * self.n)
        c = 0.0
        dayf = 1.0
        lastday = -1
        for i in range(1, self.n):
            t = T_START + (i - 1) * STEP + STEP // 2  # rate at the interval midpoint
            if self.bursty:
                day = t // DAY
                if day != lastday:
                    dayf = rng.uniform(0.6, 1.4)  # some days busier than others
                    lastday = day
                r = RATE * _office_factor(t) * dayf
            else:
                r = RATE
            c += r * STEP / DAY
            C[i] = c
        self.C = C
        # episodes: (start index, level at start); refill fills to capacity
        self.ir = self.refill_day * PER_DAY if self.refill_day else self.n
        self.empty1 = self._empty_time(0, CAP)
        self.empty2 = self._empty_time(self.ir, CAP) if self.refill_day else None

    def _empty_time(self, i0, L0):
        # first time usage since i0 reaches L0 (linear within a step); None if beyond data
        C = self.C
        base = C[i0]
        for i in range(i0 + 1, self.n):
            if C[i] - base >= L0:
                a = C[i - 1] - base
                b = C[i] - base
                f = (L0 - a) / (b - a) if b > a else 0.0
                return T_START + (i - 1) * STEP + f * STEP
        return None

    def true_level(self, i):
        if i < self.ir:
            return CAP - (self.C[i] - self.C[0])
        return CAP - (self.C[i] - self.C[self.ir])

    def samples(self):
        """Yield (i, t, reading or None, episode, true_empty_t, eval) for every step.

        eval: this step counts for the error (>= 20 % of capacity used in the episode,
        not yet empty). Stops when the last episode is empty.
        """
        rng = Rng(self.seed * 13 + 5)
        for i in range(self.n):
            t = T_START + i * STEP
            ep = 0 if i < self.ir else 1
            te = self.empty1 if ep == 0 else self.empty2
            if te is None:
                return
            if t >= te:
                if ep == 1 or not self.refill_day:
                    return
                # (the first episode never empties before the refill in these scenarios)
            lvl = self.true_level(i)
            used = CAP - lvl
            q = lvl
            if self.noise:
                q += rng.uniform(-self.noise, self.noise) * CAP
            if self.spike_p and rng.random() < self.spike_p:
                s = rng.uniform(0.1, 0.5) * CAP
                q = q + s if rng.random() < 0.5 else q - s
                if q < 0:
                    q = 0.0
            day = i / PER_DAY
            drop = self.drop_p and rng.random() < self.drop_p
            for g0, gl in self.gaps:
                if g0 <= day < g0 + gl:
                    drop = True
            yield i, t, (None if drop else q), ep, te, used >= 0.2 * CAP and t < te


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

    def __init__(self, span=7 * DAY):
        self.span = span
        n = span // STEP + 8
        self.n = n
        self.bt = array("d", [0.0] * n)
        self.bq = array("f", [0.0] * n)
        self.head = self.cnt = 0
        self.ep = -1

    def update(self, t, q, ep):
        if ep != self.ep:
            self.ep = ep
            self.cnt = 0
        if q is None:
            return
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
        return self.bt[i1] + self.bq[i1] / r


class Hist:
    """Log-spaced histogram of relative errors: quantiles in fixed memory.

    50 bins per decade from 1e-4 to 1e2 (bin width 4.7 %, interpolated inside the bin);
    errors below 1e-4 fall into bin 0 and are reported as 0.
    """
    PER_DEC = 50
    LO = -4
    NB = 6 * 50 + 2

    def __init__(self):
        self.h = array("I", [0] * self.NB)
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
    t7 = Trailing7()
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
