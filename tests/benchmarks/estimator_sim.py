# Scenario simulator, baselines and scoring for the depletion estimator.
# Used by tests/benchmarks/bench_estimator.py (via estimator_score.py).
# Runs on MicroPython (64K heap) and CPython: fixed arrays, no per-sample lists.
from array import array

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
# dropout probability, long gaps [(start day, length days)].
# Every scenario has a real sensor's noise: +-0.5 % FS (a good ultrasonic / load cell);
# "noise" and "mix" have +-2 % FS. Noise-free data would make every method exact.
SCENARIOS = (
    ("constant", False, 0.005, 0.0, None, 0.0, ()),
    ("bursty", True, 0.005, 0.0, None, 0.0, ()),
    ("noise", False, 0.02, 0.0, None, 0.0, ()),
    ("spikes", False, 0.005, 0.04, None, 0.0, ()),
    ("refill", False, 0.005, 0.0, 18, 0.0, ()),
    ("dropouts", False, 0.005, 0.0, None, 0.15, ((9, 1.5), (20, 1.0))),
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
        # pass 1: usage. A per-day busyness factor and the usage at each day start are
        # enough to give the exact cumulative usage at any sample (no big arrays: 64K heap)
        rng = Rng(seed * 7 + 3)
        nd = days + 1
        self.f = array("f", bytes(4 * nd))
        self.D = array("f", bytes(4 * (nd + 1)))
        for k in range(nd):
            self.f[k] = rng.uniform(0.6, 1.4) if self.bursty else 1.0
            self.D[k + 1] = self.D[k] + self._part(k, PER_DAY)
        # episodes: the refill (if any) fills to capacity at sample ir
        self.ir = self.refill_day * PER_DAY if self.refill_day else self.n
        self.c_ir = self.cum(self.ir) if self.refill_day else 0.0
        self.empty1 = self._empty_time(0, CAP)
        self.empty2 = self._empty_time(self.ir, CAP) if self.refill_day else None

    def _part(self, k, j):
        # usage during the first j steps of day k (rate taken at each step's midpoint)
        if not self.bursty:
            return RATE * j * STEP / DAY
        s = 0.0
        for m in range(j):
            s += _office_factor(T_START + (k * PER_DAY + m) * STEP + STEP // 2)
        return s * RATE * self.f[k] * STEP / DAY

    def cum(self, i):
        # cumulative usage from the start to sample i
        k = i // PER_DAY
        return self.D[k] + self._part(k, i - k * PER_DAY)

    def _empty_time(self, i0, L0):
        # first time usage since i0 reaches L0 (linear within a step); None if beyond data
        base = self.cum(i0)
        prev = 0.0
        for i in range(i0 + 1, self.n):
            c = self.cum(i) - base
            if c >= L0:
                f = (L0 - prev) / (c - prev) if c > prev else 0.0
                return T_START + (i - 1) * STEP + f * STEP
            prev = c
        return None

    def true_level(self, i):
        if i < self.ir:
            return CAP - self.cum(i)
        return CAP - (self.cum(i) - self.c_ir)

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


