"""Reading filters, chained as the board file lists them, e.g.
  [{"type": "median", "n": 5}, {"type": "outlier", "max_jump": 0.1},
   {"type": "ema", "alpha": 0.3}]
Build with `build(cfg_list, full_scale)`; feed `chain.update(x)` one reading at a
time (None = the sensor gave nothing). It returns the filtered value, or None
while a reading is rejected (keep the previous value). `chain.quality()` scores
the recent readings 0..10: 10 = all of the last `window` accepted, low scatter.

Filter quantities (after geometry): full_scale = consumable capacity, so
"max_jump": 0.1 means 10 % of a full container. Buffers are allocated once in
the constructors; update() does not allocate (beyond float boxing on ports that
box floats).
"""


from array import array

# Heap notes (a board loads this as .mpy into a 64 KB heap, floats boxed): the sample
# rings are array("d"), 8 bytes a value in place, where a list keeps a boxed float alive
# per slot ("d", not "f": values come back exactly, on every port). Each function is a
# raw-code object in RAM, so a helper used once is folded into its caller.


class Median:
    def __init__(self, n=5):
        self.n = n
        self._ring = array("d", bytes(8 * n))
        self._tmp = array("d", bytes(8 * n))
        self.reset()

    def reset(self):
        self._k = self._i = 0

    def update(self, x):
        r = self._ring
        r[self._i] = x
        self._i = (self._i + 1) % self.n
        if self._k < self.n:
            self._k += 1
        k = self._k
        t = self._tmp
        for j in range(k):
            # insertion sort of the ring into t: insert r[j] into the sorted t[:j]
            v = r[j]
            i = j
            while i > 0 and t[i - 1] > v:
                t[i] = t[i - 1]
                i -= 1
            t[i] = v
        return t[k // 2] if k & 1 else (t[k // 2 - 1] + t[k // 2]) / 2


class Ema:
    def __init__(self, alpha=0.3):
        if not 0 < alpha <= 1:
            raise ValueError("ema alpha must be in (0, 1]")
        self.alpha = alpha
        self.v = None

    def reset(self):
        self.v = None

    def update(self, x):
        self.v = x if self.v is None else self.v + self.alpha * (x - self.v)
        return self.v


class Outlier:
    """Rejects readings farther than max_jump * full_scale from the running median
    of accepted readings. `confirm` consecutive rejects that agree with each other
    are a real step (a refill, a new container): accepted, and `stepped` is set so
    the chain restarts the later stages."""

    def __init__(self, full_scale, max_jump=0.1, n=5, confirm=3):
        self.lim = max_jump * full_scale
        self.confirm = confirm
        self._med = Median(n)
        self.m = None
        self.stepped = False
        self._lo = self._hi = 0.0
        self._rej = 0

    def reset(self):
        self._med.reset()
        self.m = None
        self._rej = 0

    def update(self, x):
        if self.m is not None and abs(x - self.m) > self.lim:
            if self._rej == 0:
                self._lo = self._hi = x
            else:
                self._lo, self._hi = min(self._lo, x), max(self._hi, x)
            self._rej += 1
            if self._rej < self.confirm or self._hi - self._lo > self.lim:
                if self._hi - self._lo > self.lim:
                    self._rej = 0    # rejects disagree: spikes, not a step
                return None
            self._med.reset()
            self.stepped = True
        self._rej = 0
        self.m = self._med.update(x)
        return x


class Chain:
    def __init__(self, stages, full_scale, window=10):
        self.stages = stages
        self.fs = float(full_scale)
        self.window = window
        # a reading farther than this from the filtered value counts as not accepted
        self.lim = 0.1 * self.fs
        for s in stages:
            if isinstance(s, Outlier):
                self.lim = s.lim
        self._d = array("d", bytes(8 * window))   # |reading - filtered| of accepted readings
        # accept bits of the last `window` readings, readings seen, _d ring position and fill
        self._bits = self._seen = self._di = self._dn = 0

    def update(self, x):
        v = x
        if x is not None:
            stages = self.stages
            for i in range(len(stages)):
                v = stages[i].update(v)
                if v is None:
                    break
                if getattr(stages[i], "stepped", False):
                    stages[i].stepped = False
                    for j in range(i + 1, len(stages)):
                        stages[j].reset()
        ok = 0      # accepted? (no reading, a rejected one, or a spike the median absorbed: no)
        if v is not None:
            dev = abs(x - v)
            if dev <= self.lim:
                ok = 1
                self._d[self._di] = dev
                self._di = (self._di + 1) % self.window
                self._dn = min(self._dn + 1, self.window)
        self._bits = ((self._bits << 1) | ok) & ((1 << self.window) - 1)
        self._seen += 1
        return v

    def quality(self):
        """0..10: share of the last `window` readings accepted, minus a penalty for
        scatter (mean |reading - filtered| above 1 % of full scale; 10 % costs all)."""
        n = min(self._seen, self.window)
        if not n:
            return 0
        b, ok = self._bits, 0
        for _ in range(n):
            ok += b & 1
            b >>= 1
        s = 0.0
        for i in range(self._dn):
            s += self._d[i]
        s = s / self._dn / self.fs if self._dn else 0.0
        q = 10 * ok / n - max(0.0, (s - 0.01) * 10 / 0.09)
        return max(0, min(10, int(q + 0.5)))


def build(cfg, full_scale=100.0, window=10):
    """Chain from a board "filters" list; full_scale in the units filtered."""
    stages = []
    for c in cfg:
        t = c.get("type")
        if t == "median":
            f = Median(c.get("n", 5))
        elif t == "ema":
            f = Ema(c.get("alpha", 0.3))
        elif t == "outlier":
            f = Outlier(full_scale, c.get("max_jump", 0.1), c.get("n", 5), c.get("confirm", 3))
        else:
            raise ValueError("unknown filter type: %r" % t)
        stages.append(f)
    return Chain(stages, full_scale, window)
