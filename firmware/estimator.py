# Depletion estimator: remaining quantity, consumption rate and time-to-empty.
#
# Input: a stream of ``update(t, q, quality)`` samples (t in seconds, monotonic; q in the
# consumable's unit, already filtered; quality 0..10; q None = dropout). Pure logic, no
# hardware, fixed memory: every buffer is allocated in ``__init__`` and never grows.
#
# Method, and why
# ---------------
# Usage of consumables is bursty (office hours, empty weekends), readings are noisy and
# sometimes wild, and the sensor drops out. So the *rate* must come from a long window that
# spans whole weeks, while the *level* must follow the present reading. Two parts:
#
# 1. Rate: accepted samples are averaged into fixed time buckets (default 6 h; a ring of 84
#    buckets = 21 days). On each bucket close one line is fitted by pooled weighted least
#    squares: a common slope, one intercept per *segment* (a segment starts at every refill or
#    top-up). Usage does not change when the tank is refilled, so history before a refill
#    still counts for the rate, and the refill jump never enters the slope. Two Huber
#    re-weighting passes (scale: mean |residual|) bound the influence of outliers that passed the gate.
#    Bucketing is the decimation: the fit costs O(84) and the bucket means already average
#    the noise. Theil-Sen was considered and rejected: with bursty usage the median of
#    pairwise slopes is pulled toward the weekday rate (short pairs dominate), and it needs an
#    O(n^2) sort. The slope's standard error is inflated by the lag-1 autocorrelation of the
#    residuals (bursty residuals are strongly correlated, so the plain SE is overconfident).
#
# 2. Level: a 1-state Kalman filter that drifts at the fitted rate. Its measurement noise R is
#    learnt from detrended successive differences; its process noise Q from how the fit
#    residuals wander from bucket to bucket. Steady usage + noisy sensor -> small gain, heavy
#    smoothing; clean sensor + bursty usage -> gain near 1, the level follows the reading.
#
# Outliers: an innovation beyond max(gate*sqrt(S), gate_min*capacity) is held, not used.
# ``confirm`` consecutive mutually consistent held samples are a real level change: up by at
# least refill_jump*capacity -> refill (new episode, ``refilled`` set for that update), a
# smaller rise -> top-up (new segment, same episode), a fall -> fast consumption. A lone
# spike is never followed by a consistent sample, so it is dropped (counted in ``rejected``).
#
# Time-to-empty = remaining / rate. Its band combines the rate's standard error, the level's
# variance, and the residual spread of the level around the line (how far bursty usage can
# carry the real crossing away from the straight-line one), at ``band_z`` sigmas (1.2816 =
# 80 % two-sided). ``hi`` is None when the band is unbounded.
#
# Numbers: ESP32 MicroPython floats are 32-bit, so times are kept as offsets from the first
# sample (``t - t0`` is exact when t is an int) and sums are centred before squaring.
#
# Heap while compiling: the unix port compiles this module from source inside the 64K test
# heap, where every parse node, float literal and `self.x` costs bytes. So: int literals
# where a float is not needed, locals for repeated attributes, no docstrings.
from array import array
from binascii import a2b_base64
from math import sqrt

from firmware.compat import const

_DAY = const(86400)
_STATE_V = const(2)
_MAD = 0.8862  # sigma of one reading = _MAD * E|difference of two readings| (normal noise)

# state() layout: version, these attributes in this order (_PARAMS = the constructor's
# positional parameters), then the four bucket-ring arrays.
_PARAMS = ("capacity", "window_s", "refill_jump", "nbuckets", "gate", "gate_min",
           "confirm", "band_z", "rate_min", "min_span_s", "noise0")
# dynamic attributes and their initial values
_DYN = ("episode", "rejected", "_t0", "_tnow", "_tL", "_L", "_P", "_mad", "_Q",
        "_rate", "_rsig", "_sdev", "_valid", "_seg", "_consumed", "_anchor",
        "_nacc", "_qprev", "_tprev", "_bidx", "_aw", "_at", "_aq",
        "_pn", "_pw", "_pt", "_pq", "_bh", "_bn")
_INIT = (0, 0, None, None, 0, 0, 0, 0, 0, 0, 0, 0, False, 0, 0, 0,
         0, None, 0, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0)


class Estimator:
    def __init__(self, capacity, window_s=21 * 86400, refill_jump=0.2, nbuckets=84,
                 gate=4, gate_min=0.03, confirm=2, band_z=1.2816, rate_min=None,
                 min_span_s=86400, noise0=0.005):
        c = self.capacity = float(capacity)
        self.window_s = int(window_s)
        n = self.nbuckets = int(nbuckets)
        self.refill_jump = refill_jump  # fraction of capacity
        self.gate = gate                # outlier gate, innovation sigmas ...
        self.gate_min = gate_min        # ... never tighter than this fraction of capacity
        self.confirm = confirm          # consistent outliers that make a real level change
        self.band_z = band_z
        # below rate_min (units/day) the consumable counts as unused: tte() is None
        self.rate_min = c / 1000 if rate_min is None else rate_min
        self.min_span_s = min_span_s    # data span needed before a rate is reported
        self.noise0 = noise0            # prior sensor noise, fraction of capacity
        self._bs = max(1, self.window_s // n)  # bucket length, s
        # bucket ring: mean time (days since t0), mean level, weight, segment id;
        # _u/_e: the fit's robust weights and residuals, allocated once
        self._bt, self._bq, self._bw, self._u, self._e = [array("f", bytes(4 * n)) for _ in range(5)]
        self._bg = array("H", bytes(2 * n))
        self._ix = array("H", bytes(2 * n))  # the fit's ring positions, oldest first
        self.refilled = False
        for k, v in zip(_DYN, _INIT):
            setattr(self, k, v)
        self._mad = noise0 * c / _MAD  # mean |successive difference|, see _R()
        self._Q = (c / 20) ** 2        # until a fit exists, let the level wander freely

    # ---------------------------------------------------------------- input
    def update(self, t, q, quality=10):
        self.refilled = False
        t0 = self._t0
        if t0 is None:
            t0 = self._t0 = self._tnow = t
        if t > self._tnow:
            self._tnow = t
        if q is None or quality <= 0:
            return  # dropout: time moves on, the level is predicted on query
        td = (t - t0) / _DAY
        bi = int((t - t0) // self._bs)
        if bi != self._bidx:
            self._close()
            self._bidx = bi
        w = min(quality, 10) / 10
        R = self._R() / (w * w)
        pn = self._pn
        if self._nacc == 0 and pn == 0:  # first reading
            self._L = self._anchor = q
            self._tL = td
            self._accept(td, q, w, q, 4 * R, R)
            return
        L, P = self._predict(td)
        gm = self.gate_min * self.capacity
        if abs(q - L) <= max(self.gate * sqrt(P + R), gm):
            self._unhold()  # held samples, if any, were spikes
            self._accept(td, q, w, L, P, R)
            return
        # outlier: extend the held run if consistent with it, else start a new one
        if pn and abs(q - self._held(td)) > max(self.gate * sqrt(2 * R), gm):
            self._unhold()
        self._pn += 1
        self._pw += w
        self._pt += w * td
        self._pq += w * q
        if self._pn >= self.confirm:
            self._shift(td, L)

    # ---------------------------------------------------------------- outputs
    def remaining(self):
        # level at the last update time; None before the first reading
        if self._nacc == 0:
            return None
        return max(self._predict(self._now())[0], 0)

    def rate_per_day(self):
        # consumption rate, units/day (positive = consuming); None if not estimable
        return self._rate if self._valid else None

    def rate_sigma(self):
        # standard error of rate_per_day(); None if not estimable
        return self._rsig if self._valid else None

    def tte(self):
        # (seconds, lo, hi) to empty from the last update, or None when not estimable:
        # too little data, or rate ~0 (below rate_min or within 1 sigma of 0).
        # lo/hi: band at band_z sigmas; hi None = unbounded.
        r, sr = self._rate, self._rsig
        if not self._valid or self._nacc == 0 or r <= self.rate_min or r < sr:
            return None
        L, P = self._predict(self._now())
        if L <= 0:
            return (0, 0, 0)
        d = L / r * _DAY
        rel = self.band_z * sqrt((P + self._sdev ** 2) / (L * L) + (sr / r) ** 2)
        return (d, d / (1 + rel), d / (1 - rel) if rel < 1 else None)

    def consumed_total(self):
        # sum of decreases of the smoothed level, across refills (usage metering)
        return self._consumed

    # ---------------------------------------------------------------- persistence
    def state(self):
        # small list for store.save (firmware/store.py), which writes the four bucket-ring
        # arrays as base64 of their bytes: exact, ~4x shorter than floats, and streamed.
        # Estimator.restore(the list read back) rebuilds an equivalent object.
        return [_STATE_V] + [getattr(self, k) for k in _PARAMS + _DYN] + list(self._ring())

    @classmethod
    def restore(cls, s):
        if not s or s[0] != _STATE_V:
            raise ValueError("estimator state version")
        np = len(_PARAMS)
        e = cls(*s[1:1 + np])
        for k, v in zip(_DYN, s[1 + np:]):
            setattr(e, k, v)
        for a, tc, v in zip(e._ring(), "fffH", s[1 + np + len(_DYN):]):
            for i, x in enumerate(array(tc, a2b_base64(v))):
                a[i] = x
        return e

    # ---------------------------------------------------------------- internals
    def _ring(self):
        return (self._bt, self._bq, self._bw, self._bg)

    def _now(self):
        return (self._tnow - self._t0) / _DAY

    def _R(self):
        s = max(_MAD * self._mad, self.capacity / 10000)
        return s * s

    def _predict(self, td):
        dt = max(td - self._tL, 0)
        return self._L - self._rate * dt, self._P + self._Q * dt

    def _held(self, td):
        # mean of the held (outlier) readings, carried forward to td at the current rate
        pw = self._pw
        return self._pq / pw - self._rate * (td - self._pt / pw)

    def _unhold(self):
        self.rejected += self._pn
        self._pn = self._pw = self._pt = self._pq = 0

    def _accept(self, td, q, w, L, P, R):
        K = P / (P + R)
        L += K * (q - L)
        self._L = L
        self._P = (1 - K) * P
        self._tL = td
        qp = self._qprev
        if qp is not None:
            # detrended successive difference: sensor noise (and a little burstiness);
            # clipped so one unflagged glitch cannot blow the noise estimate up
            m = self._mad
            d = abs(q - qp + self._rate * (td - self._tprev))
            self._mad = m + (min(d, 4 * m + self.capacity / 1000) - m) / 20
        self._qprev, self._tprev = q, td
        self._aw += w
        self._at += w * td
        self._aq += w * q
        self._nacc += 1
        self._ratchet(L)

    def _ratchet(self, L):
        # metering counts only new lows of the smoothed level, so noise cannot accumulate;
        # a rise beyond gate_min*capacity (an undetected top-up) moves the anchor up
        a = self._anchor
        if L < a:
            self._consumed += a - L
            self._anchor = L
        elif L > a + self.gate_min * self.capacity:
            self._anchor = L

    def _shift(self, td, Lp):
        # `confirm` consistent outliers: the level really moved (to qn; Lp = predicted)
        qn = self._held(td)
        if self._nacc <= 2 or qn > Lp:
            if self._nacc <= 2:
                # warm-up: the first reading(s) were the outliers; start over quietly
                self._aw = self._at = self._aq = 0
            else:
                self._ratchet(Lp)  # usage up to the refill still counts
                self._close()      # the old segment stays in the ring: it informs the rate
                if qn - Lp >= self.refill_jump * self.capacity:
                    self.episode += 1
                    self.refilled = True
            self._seg = (self._seg + 1) & 0xFFFF  # rises start a new segment of the fit
            self._anchor = qn
        pw = self._pw
        self._L = qn
        self._P = self._R() / pw
        self._tL = td
        self._qprev = None  # a difference across the jump is not noise
        self._aw += pw
        self._at += self._pt
        self._aq += self._pq
        self._nacc += self._pn
        self._pn = self._pw = self._pt = self._pq = 0
        self._ratchet(qn)

    def _close(self):
        # close the open bucket into the ring and refit
        aw = self._aw
        if aw <= 0:
            return
        i, n = self._bh, self.nbuckets
        self._bt[i] = self._at / aw
        self._bq[i] = self._aq / aw
        self._bw[i] = aw
        self._bg[i] = self._seg
        self._bh = (i + 1) % n
        self._bn = min(self._bn + 1, n)
        self._aw = self._at = self._aq = 0
        self._fit()

    def _fit(self):
        nb, bt, bq, bw, bg, u, e = self.nbuckets, self._bt, self._bq, self._bw, self._bg, self._u, self._e
        # forget buckets that fell out of the window (possible after long gaps)
        tmin = self._now() - self.window_s / _DAY
        while self._bn and bt[(self._bh - self._bn) % nb] < tmin:
            self._bn -= 1
        n = self._bn
        ix = self._ix
        for k in range(n):
            ix[k] = i = (self._bh - n + k) % nb
            u[i] = 1
        ix = memoryview(ix)[:n]  # a view, not a copy
        for it in range(3):
            # pooled within-segment WLS: centre each segment on its own weighted means,
            # then one common slope; m: segment id -> [sum w, sum wt, sum wq, first t, last t]
            m = {}
            for i in ix:
                a = m.setdefault(bg[i], [0, 0, 0, bt[i], 0])
                w = bw[i] * u[i]
                a[0] += w
                a[1] += w * bt[i]
                a[2] += w * bq[i]
                a[4] = bt[i]
            sxx = sxy = 0
            for i in ix:
                a = m[bg[i]]
                dt = bt[i] - a[1] / a[0]
                sxx += bw[i] * u[i] * dt * dt
                sxy += bw[i] * u[i] * dt * (bq[i] - a[2] / a[0])
            dof = n - len(m) - 1
            if sxx <= 0 or dof < 1:
                return
            b = sxy / sxx
            s = 0
            for i in ix:
                a = m[bg[i]]
                e[i] = bq[i] - a[2] / a[0] - b * (bt[i] - a[1] / a[0])
                s += abs(e[i])
            # Huber weights, scale from the mean |residual| (cheaper than a median sort)
            c = 2 * s / n + self.capacity / 5000
            for i in ix:
                u[i] = min(1, c / (abs(e[i]) + 1e-12))
        swe = su = sw = s00 = s01 = sd = nd = 0
        for k in range(n):
            i = ix[k]
            r = e[i]
            sw += bw[i]
            su += bw[i] * u[i]
            swe += bw[i] * u[i] * r * r
            s00 += r * r
            if k and bg[ix[k - 1]] == bg[i]:
                p = e[ix[k - 1]]
                s01 += r * p
                sd += (r - p) ** 2
                nd += 1
        # residuals of bursty usage are autocorrelated: inflate the slope's variance
        rho = min(max(s01 / s00, 0), 0.9) if s00 > 0 else 0
        self._rate = -b
        self._rsig = sqrt(swe / dof / sxx * (1 + rho) / (1 - rho))
        self._sdev = sqrt(swe / su)
        # process noise: bucket-to-bucket wander of the residuals beyond what noise explains
        if nd:
            Q = (sd / nd - 2 * self._R() * n / sw) / (self._bs / _DAY)
            self._Q = max(Q, (self.capacity / 500) ** 2)
        self._valid = sum([a[4] - a[3] for a in m.values()]) * _DAY >= self.min_span_s
