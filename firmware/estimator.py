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
# least refill_jump*capacity, or to 90 % of it or more -> refill (new episode, ``refilled``
# set for that update), a smaller rise -> top-up (new segment, same episode), a fall -> fast
# consumption. A lone spike is never followed by a consistent sample, so it is dropped
# (counted in ``rejected``).
#
# Change of habits: on each bucket close the newest 7 days are fitted alone too; a rate
# that differs from the window's by more than _ZCHG sigmas (the two standard errors and
# the learnt week-ahead miss below) drops all but the newest 5 days and refits, so a
# doubled or halved usage is followed within days, not after the 21-day window has turned
# over (bench_forecast.py: 7-14 days after a step, 0.6-1.3 % median error, trailing-7d 2-3 %).
#
# Quantised gauges (1 % or 10 % steps, as many printers report toner): the smallest
# non-zero step between readings is learnt; the reading's variance is at least step^2/12,
# and a bucket mean does not average that error away (it is the same for every reading
# until the next step), so the level follows the line between steps.
#
# Time-to-empty = remaining / rate. Its band combines the level's variance, the residual
# spread of the level around the line, the level's wander over the time to empty (Q * T
# up to a week, then at the pace residuals a week apart show: a daily or weekly rhythm
# strays from the line but does not add up as a random walk does),
# and the rate's relative uncertainty: the larger of its standard error and what the device
# learnt from its own misses (once a day, the rate forecast of 7 days before against the
# level since, averaged in _VREL; over the n = T / 7 days weeks to empty 1/n of it, n the
# effective number of independent weeks by the lag-1 correlation of the weekly misses),
# and, while the newest 3 days differ from the window as a change would (not yet a week's),
# their squared rate difference. At ``band_z`` sigmas
# (1.2816 = 80 % two-sided); ``hi`` is None when the band is unbounded. Bad input (NaN,
# inf, a negative reading, time going back; a capacity not > 0) is ignored and counted
# (bad_inputs()).
#
# Numbers: ESP32 MicroPython floats are 32-bit, so times are kept as offsets from the first
# sample and sums are centred before squaring. t0 itself stays an exact attribute (an int
# when t is), outside the float array below: ``t - t0`` is then int arithmetic and exact,
# where a float32 t0 would be off by up to a minute. The metered usage is an int too
# (``consumed``, milli-units; only the fraction not yet counted is a float): a float32
# total of 20 kg has a resolution of 2 g, and 0.4 summed from float32 steps is 0.39999998,
# which truncates to 399 milli-units where 400 were used. ``episode`` and ``rejected`` stay int
# attributes too: public names (qstrs anyway), small ints (never boxed).
#
# Heap: all other state (parameters, level filter, fit results, open bucket, held outliers)
# lives in ONE preallocated array("d") ``_s``, indexed by the ``_X = const(i)`` slots below,
# not in ~45 instance attributes. Each distinct attribute name is a qstr, interned in RAM
# for good (~19 bytes on an ESP32), plus a slot in the instance dict; underscore const()
# names are folded by mpy-cross and cost neither (on a board, which runs .mpy files). A
# store into the array writes 8 bytes in place, where ``self.x = <float>`` keeps a fresh
# boxed float alive per attribute on every update (a read from the array still boxes a
# short-lived float, as any float arithmetic does). "d", not "f": stored values come back
# exactly (on the unix port, whose floats are doubles, results are bit-identical to keeping
# them in attributes); counts and ring positions are exact in it, int() where an int is
# needed. NaN in _QPREV means "no previous reading". state() saves the array as it is.
#
# Heap while compiling: the unix port compiles this module from source inside the 64K test
# heap, where every parse node, float literal and `self.x` costs bytes (and every name is a
# qstr, the const() ones too). So: int literals where a float is not needed, locals for
# repeated attributes (``s = self._s``), no docstrings.
from array import array
from math import inf, nan, sqrt

from firmware.compat import const

_DAY = const(86400)
_STATE_V = const(5)    # v5: slots 35.. (quantum, learnt band, bad inputs, forecasts; slots
                       # appended since read back as 0 from an older v5: _Q7 is then Q);
                       # v4 (consumed milli-units as an int) and v3 are migrated at boot
                       # (firmware/assemble.py restore() has its own copy of this number)
_ZCHG = const(3)  # sigmas between the newest days' rate and the window's that make a change
_SD_MAD = 0.8862  # sigma of one reading = _SD_MAD * E|difference of two readings| (normal noise)

# Slots of the state array self._s. Parameters (fixed after __init__):
_WIN = const(0)        # window_s: span of the rate fit, s
_JUMP = const(1)       # refill_jump: a rise of this fraction of capacity is a refill
_GATE = const(2)       # outlier gate, innovation sigmas ...
_GMIN = const(3)       # ... never tighter than this fraction of capacity (gate_min)
_CONFIRM = const(4)    # consistent outliers that make a real level change
_BANDZ = const(5)      # band_z
_RMIN = const(6)       # rate_min, units/day: below it the consumable counts as unused
_SPAN = const(7)       # min_span_s: data span needed before a rate is reported
_BS = const(8)         # bucket length, s (an integer)
# working state; times in days since t0 unless said otherwise
_TNOW = const(9)       # latest t - t0, s
_TL = const(10)        # time of the level estimate _L, its variance _P
_L = const(11)
_P = const(12)
_MAD = const(13)       # mean |detrended successive difference|, see _R()
_Q = const(14)         # process noise of the level, units^2/day
_RATE = const(15)      # the fit: rate (units/day), its standard error, residual spread,
_RSIG = const(16)
_SDEV = const(17)
_VALID = const(18)     # 1 once the fit spans min_span_s
_SEG = const(19)       # segment id of the open bucket, 0..0xFFFF
_CONSUMED = const(20)  # carry of consumed_milli(): milli-units not yet counted, in [0, 1)
_ANCHOR = const(21)    # metering: lowest smoothed level since the last rise
_NACC = const(22)      # accepted readings
_QPREV = const(23)     # last accepted reading (NaN: none) and its time
_TPREV = const(24)
_BIDX = const(25)      # index of the open bucket, (t - t0) // bucket length
_BH = const(26)        # ring: next position to write, number of buckets held
_BN = const(27)
_AW = const(28)        # open bucket: sum w, sum w*t, sum w*q
_AT = const(29)
_AQ = const(30)
_PN = const(31)        # held outliers: count, sum w, sum w*t, sum w*q
_PW = const(32)
_PT = const(33)
_PQ = const(34)
_QSTEP = const(35)     # smallest non-zero step between successive readings: a gauge's
                       # quantum (1 % or 10 % of many printers' toner), a noise floor of R
_VREL = const(36)      # learnt: mean square relative error of the rate over a week ahead
_NV = const(37)        # how many weekly errors were learnt (capped)
_BAD = const(38)       # inputs ignored as invalid: NaN/inf/negative reading, time going back
_FC = const(39)        # 7 x 4: the forecasts of the last 7 days, one a day: time (days),
                       # level, rate, segment (see _check)
_DV = const(67)        # the newest 3 days' rate against the window's, squared, when they
                       # differ as a change would (not yet a week's): the band's, else 0
_FE = const(68)        # 7: the relative errors learnt from those forecasts (see _check)
_VC = const(75)        # mean product of a week-ahead miss and the one a week before it
_Q7 = const(76)       # the level's wander a day from residuals a week apart (see _fit)
_NS = const(77)        # number of slots (degree days: firmware/weather.py's own ring)


class Estimator:
    def __init__(self, capacity, window_s=21 * 86400, refill_jump=0.2, nbuckets=84,
                 gate=4, gate_min=0.03, confirm=2, band_z=1.2816, rate_min=None,
                 min_span_s=86400, noise0=0.005):
        c = float(capacity)
        bad = not 0 < c < inf    # 0, negative, NaN, inf: a capacity the maths cannot use
        if bad:
            c = 100              # ... so the unit is taken as %, and the input counted
        self.capacity = c
        n = int(nbuckets)
        self.episode = self.rejected = self.consumed = 0
        self.refilled = False
        self._t0 = None  # time of the first sample; exact, see Numbers above
        s = self._s = array("d", bytes(8 * _NS))
        s[_WIN] = w = int(window_s)
        s[_JUMP] = refill_jump
        s[_GATE] = gate
        s[_GMIN] = gate_min
        s[_CONFIRM] = confirm
        s[_BANDZ] = band_z
        s[_RMIN] = c / 1000 if rate_min is None else rate_min
        s[_SPAN] = min_span_s
        s[_BS] = max(1, w // n)
        s[_BIDX] = -1
        s[_QPREV] = nan
        s[_QSTEP] = c
        s[_BAD] = bad
        s[_MAD] = noise0 * c / _SD_MAD  # noise0: prior sensor noise, fraction of capacity
        s[_Q] = (c / 20) ** 2           # until a fit exists, let the level wander freely
        # bucket ring (nbuckets = its length): mean time (days since t0), mean level, weight,
        # segment id; _u/_e: the fit's robust weights and residuals, allocated once
        self._bt, self._bq, self._bw, self._u, self._e = [array("f", bytes(4 * n)) for _ in range(5)]
        self._bg = array("H", bytes(2 * n))
        self._ix = array("H", bytes(2 * n))  # the fit's ring positions, oldest first

    # ---------------------------------------------------------------- input
    def update(self, t, q, quality=10):
        self.refilled = False
        s = self._s
        # bad input (NaN, inf, a negative reading or quality, time going back) is ignored
        # and counted: the comparisons are False for NaN
        if not abs(t) < inf or (q is not None and not (0 <= q < inf and quality >= 0)):
            s[_BAD] += 1
            return
        t0 = self._t0
        if t0 is None:
            t0 = self._t0 = t
        ts = t - t0
        if ts < s[_TNOW]:
            s[_BAD] += 1
            return
        s[_TNOW] = ts
        if q is None or quality <= 0:
            return  # dropout: time moves on, the level is predicted on query
        td = ts / _DAY
        bi = int(ts // int(s[_BS]))
        if bi != s[_BIDX]:
            self._close()
            s[_BIDX] = bi
        w = min(quality, 10) / 10
        R = self._R() / (w * w)
        pn = s[_PN]
        if s[_NACC] == 0 and pn == 0:  # first reading
            s[_L] = s[_ANCHOR] = q
            s[_TL] = td
            self._accept(td, q, w, q, 4 * R, R)
            return
        qp = s[_QPREV]
        if qp == qp and 0 < abs(q - qp) < s[_QSTEP]:
            s[_QSTEP] = abs(q - qp)
        L, P = self._predict(td)
        gm = s[_GMIN] * self.capacity
        if abs(q - L) <= max(s[_GATE] * sqrt(P + R), gm):
            self._unhold()  # held samples, if any, were spikes
            self._accept(td, q, w, L, P, R)
            return
        # outlier: extend the held run if consistent with it, else start a new one
        if pn and abs(q - self._held(td)) > max(s[_GATE] * sqrt(2 * R), gm):
            self._unhold()
        s[_PN] += 1
        s[_PW] += w
        s[_PT] += w * td
        s[_PQ] += w * q
        if s[_PN] >= s[_CONFIRM]:
            self._shift(td, L)

    # ---------------------------------------------------------------- outputs
    def remaining(self):
        # level at the last update time; None before the first reading
        s = self._s
        if s[_NACC] == 0:
            return None
        return max(self._predict(s[_TNOW] / _DAY)[0], 0)

    def rate_per_day(self):
        # consumption rate, units/day (positive = consuming); None if not estimable
        s = self._s
        return s[_RATE] if s[_VALID] else None

    def rate_sigma(self):
        # standard error of rate_per_day(); None if not estimable
        s = self._s
        return s[_RSIG] if s[_VALID] else None

    def tte(self):
        # (seconds, lo, hi) to empty from the last update, or None when not estimable:
        # too little data, or rate ~0 (below rate_min or within 1 sigma of 0).
        # lo/hi: band at band_z sigmas; hi None = unbounded.
        s = self._s
        r, sr = s[_RATE], s[_RSIG]
        if not s[_VALID] or s[_NACC] == 0 or r <= s[_RMIN] or r < sr:
            return None
        L, P = self._predict(s[_TNOW] / _DAY)
        if L <= 0:
            return (0, 0, 0)
        r, sr = self._r(L, r, sr)
        d = L / r * _DAY
        # the learnt week-ahead miss over the n = T / 7 days weeks to empty: 1/n of it for
        # independent weekly misses, n the effective number by their lag-1 correlation c
        # (a season or a trend keeps missing the same way: c near 1, no averaging)
        v = s[_VREL]
        c = min(max(s[_VC] / v, 0), 9 / 10) if v > 0 else 0
        v *= min(1, 7 * r / L * (1 + c) / (1 - c))
        T, q = L / r, s[_Q]
        rel = s[_BANDZ] * sqrt((P + s[_SDEV] ** 2 + q * min(T, 7)
                                + min(s[_Q7] or q, q) * max(T - 7, 0)) / (L * L)
                               + max((sr / r) ** 2, v)
                               + s[_DV] / (r * r))
        return (d, d / (1 + rel), d / (1 - rel) if rel < 1 else None)

    def _r(self, L, r, s):
        # the mean rate until L is used, and its sigma s: the fitted ones (weather.py walks
        # the weather). Hook names and arguments reuse qstrs the firmware has anyway
        return r, s

    def bad_inputs(self):
        # inputs ignored as invalid (see update), and a capacity that was not > 0
        return int(self._s[_BAD])

    def consumed_milli(self):
        # sum of decreases of the smoothed level, across refills (usage metering), in
        # milli-units: an int, exact on float32 boards
        return self.consumed

    # ---------------------------------------------------------------- persistence
    def state(self):
        # small list for store.save (firmware/store.py), which writes the state array and the
        # four bucket-ring arrays as base64 of their bytes: exact, short, and streamed.
        # firmware/assemble.py restore(the list read back) rebuilds an equivalent object
        # (boot-only code: there it is freed after boot, ~200 B of RAM)
        return [_STATE_V, self.capacity, len(self._bt), self._t0, self.episode, self.rejected,
                self.consumed, self._s, self._bt, self._bq, self._bw, self._bg]

    # ---------------------------------------------------------------- internals
    def _R(self, quantum=True):
        # a quantised reading is anywhere within +-half a step of the truth: variance q^2/12
        s = self._s
        sd = max(_SD_MAD * s[_MAD], self.capacity / 10000)
        q = s[_QSTEP] if quantum and s[_QSTEP] < self.capacity / 5 else 0
        return max(sd * sd, q * q / 12)

    def _predict(self, td):
        s = self._s
        dt = max(td - s[_TL], 0)
        return s[_L] - s[_RATE] * dt, s[_P] + s[_Q] * dt

    def _held(self, td):
        # mean of the held (outlier) readings, carried forward to td at the current rate
        s = self._s
        pw = s[_PW]
        return s[_PQ] / pw - s[_RATE] * (td - s[_PT] / pw)

    def _unhold(self):
        s = self._s
        self.rejected += int(s[_PN])
        s[_PN] = s[_PW] = s[_PT] = s[_PQ] = 0

    def _accept(self, td, q, w, L, P, R):
        s = self._s
        K = P / (P + R)
        L += K * (q - L)
        s[_L] = L
        s[_P] = (1 - K) * P
        s[_TL] = td
        qp = s[_QPREV]
        if qp == qp:  # not NaN: there is a previous reading
            # detrended successive difference: sensor noise (and a little burstiness);
            # clipped so one unflagged glitch cannot blow the noise estimate up
            m = s[_MAD]
            d = abs(q - qp + s[_RATE] * (td - s[_TPREV]))
            s[_MAD] = m + (min(d, 4 * m + self.capacity / 1000) - m) / 20
        s[_QPREV] = q
        s[_TPREV] = td
        s[_AW] += w
        s[_AT] += w * td
        s[_AQ] += w * q
        s[_NACC] += 1
        self._ratchet(L)

    def _ratchet(self, L):
        # metering counts only new lows of the smoothed level, so noise cannot accumulate;
        # a rise beyond gate_min*capacity (an undetected top-up) moves the anchor up
        s = self._s
        a = s[_ANCHOR]
        if L < a:
            n = (a - L) * 1000 + s[_CONSUMED]
            i = int(n)
            self.consumed += i
            s[_CONSUMED] = n - i
            s[_ANCHOR] = L
        elif L > a + s[_GMIN] * self.capacity:
            s[_ANCHOR] = L

    def _shift(self, td, Lp):
        # `confirm` consistent outliers: the level really moved (to qn; Lp = predicted)
        s = self._s
        qn = self._held(td)
        warm = s[_NACC] <= 2
        if warm or qn > Lp:
            if warm:
                # warm-up: the first reading(s) were the outliers; start over quietly
                s[_AW] = s[_AT] = s[_AQ] = 0
            else:
                self._ratchet(Lp)  # usage up to the refill still counts
                self._close()      # the old segment stays in the ring: it informs the rate
                # a rise that fills it (a box landing on a tank still 80 % full) is a
                # refill too, however small: the policy orders once per episode
                if qn - Lp >= s[_JUMP] * self.capacity or qn >= 0.9 * self.capacity:
                    self.episode += 1
                    self.refilled = True
            s[_SEG] = (int(s[_SEG]) + 1) & 0xFFFF  # rises start a new segment of the fit
            s[_ANCHOR] = qn
        pw = s[_PW]
        s[_L] = qn
        s[_P] = self._R() / pw
        s[_TL] = td
        s[_QPREV] = nan  # a difference across the jump is not noise
        s[_AW] += pw
        s[_AT] += s[_PT]
        s[_AQ] += s[_PQ]
        s[_NACC] += s[_PN]
        s[_PN] = s[_PW] = s[_PT] = s[_PQ] = 0
        self._ratchet(qn)

    def _close(self):
        # close the open bucket into the ring and refit
        s = self._s
        aw = s[_AW]
        if aw <= 0:
            return
        i, n = int(s[_BH]), len(self._bt)
        self._bt[i] = s[_AT] / aw
        self._bq[i] = s[_AQ] / aw
        self._bw[i] = aw
        self._bg[i] = int(s[_SEG])
        s[_BH] = (i + 1) % n
        s[_BN] = min(s[_BN] + 1, n)
        s[_AW] = s[_AT] = s[_AQ] = 0
        self._fit()
        # a change of habits: the newest week's rate against the whole window's. When they
        # differ by more than 3 combined sigmas, the older buckets describe a usage that is
        # gone: forget them (the window then grows again from the change)
        # The newest 3 days alone, the same test: a change that has begun but is not yet a
        # week's. Too few days to refit on (a weekend, a gauge's step look alike), so it
        # only widens the band: their rate is as likely as the window's
        s[_DV] = 0
        for dd in (7, 3):
            k = int(dd * _DAY // s[_BS])
            if not s[_VALID] or s[_BN] < 2 * k:
                break
            r, sr, sd, q = s[_RATE], s[_RSIG], s[_SDEV], s[_Q]
            self._fit(k)
            # sigmas: the fits' standard errors, and how far a week's real usage strayed
            # from its forecast so far (_VREL: swings that are no change of habits)
            d = s[_RATE] - r
            if abs(d) > _ZCHG * sqrt(sr * sr + s[_RSIG] ** 2 + s[_VREL] * r * r):
                if dd < 7:
                    s[_DV] = d * d
                else:
                    # the change happened within that week, most likely in its first days
                    # (it takes a few to stand out): keep its newest 5 days and refit
                    s[_BN] = k * 5 // 7
                    self._fit()
                    break
            s[_RATE], s[_RSIG], s[_SDEV], s[_Q] = r, sr, sd, q
            s[_VALID] = 1
        self._check()

    def _check(self):
        # once a day: how wrong was the rate forecast of 7 days ago (same segment, so no
        # refill between)? Its relative error squared is averaged into _VREL, the band's
        # floor for the rate's uncertainty: the band learns from the device's own misses
        s = fc = self._s
        td = s[_TNOW] / _DAY
        j = _FC + 4 * (int(td) % 7)
        if not s[_VALID] or td - fc[j] < 1:
            return
        L = self._predict(td)[0]
        r0 = fc[j + 2]
        h = td - fc[j]
        if 6 <= h < 8 and r0 > s[_RMIN] and fc[j + 3] == s[_SEG]:
            e = (fc[j + 1] - L) / (r0 * h) - 1  # (in degree-day mode r0 includes the weather)
            n = min(s[_NV] + 1, 30)
            s[_NV] = n
            v = s[_VREL]
            # clipped at 4x what was learnt: a change of habits is a miss too, but one the
            # change test above must still see (it compares against _VREL)
            s[_VREL] = v + (min(e * e, 4 * v + 1 / 100, 1) - v) / n
            i = _FE + int(td) % 7      # this weekday's miss of a week ago
            s[_VC] += (max(min(e * s[i], 4 * v + 1 / 100), -1) - s[_VC]) / n
            s[i] = e
        fc[j] = td
        fc[j + 1] = L
        fc[j + 2] = self._r(7 * s[_RATE], s[_RATE], 0)[0]
        fc[j + 3] = s[_SEG]

    def _fit(self, k=0):
        s, bt, bq, bw, bg, u, e = self._s, self._bt, self._bq, self._bw, self._bg, self._u, self._e
        nb = len(bt)
        # forget buckets that fell out of the window (possible after long gaps)
        tmin = s[_TNOW] / _DAY - s[_WIN] / _DAY
        h, n = int(s[_BH]), int(s[_BN])
        while n and bt[(h - n) % nb] < tmin:
            n -= 1
        s[_BN] = n
        lag = int(7 * _DAY // s[_BS])
        if k:
            n = lag = min(n, k)  # the newest k buckets only (and they leave _Q7 be)
        ix = self._ix
        for k in range(n):
            ix[k] = i = (h - n + k) % nb
            u[i] = 1
        ix = memoryview(ix)[:n]  # a view, not a copy
        if n:
            bt = self._t(bt, bt[ix[0]])   # the regressor: time (or degree days, weather.py)
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
            se = 0
            for i in ix:
                a = m[bg[i]]
                e[i] = bq[i] - a[2] / a[0] - b * (bt[i] - a[1] / a[0])
                se += abs(e[i])
            # Huber weights, scale from the mean |residual| (cheaper than a median sort)
            c = 2 * se / n + self.capacity / 5000
            for i in ix:
                u[i] = min(1, c / (abs(e[i]) + 1e-12))
        swe = su = sw = s00 = s01 = sd = nd = s7 = n7 = 0
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
            if k >= lag and bg[ix[k - lag]] == bg[i]:
                s7 += (r - e[ix[k - lag]]) ** 2    # (a gap between them: a little more)
                n7 += 1
        # residuals of bursty usage are autocorrelated: inflate the slope's variance
        rho = min(max(s01 / s00, 0), 0.9) if s00 > 0 else 0
        s[_RATE] = -b
        s[_RSIG] = sqrt(swe / dof / sxx * (1 + rho) / (1 - rho))
        s[_SDEV] = sqrt(swe / su)
        # process noise: bucket-to-bucket wander of the residuals beyond what noise explains
        # (a bucket's mean averages the noise of its readings, not their quantisation error,
        # which stays the same from one reading to the next)
        if nd:
            R = 2 * (self._R(False) * n / sw + self._R() - self._R(False))
            f = (self.capacity / 500) ** 2
            s[_Q] = Q = max((sd / nd - R) / (s[_BS] / _DAY), f)
            # a random walk's differences grow with their lag; a weekly or daily rhythm's
            # (office hours, meals, a room's temperature) do not: the wander beyond a
            # week is what differences a week apart show (tte() takes at most Q: a walk
            # of daily steps shows more a week apart, but on bench_forecast.py no family
            # gained from it and the 10 % gauge's band over-covered, 90.2 %). The
            # fit's line takes some of a walk away: a walk less its line over the window
            # W is near a Brownian bridge, whose steps over 7 days vary as 7 (1 - 7 / W)
            if n7 > 9:
                s[_Q7] = max((s7 / n7 - R) / (7 - 49 * _DAY / s[_WIN]), f)
        s[_VALID] = sum([a[4] - a[3] for a in m.values()]) * _DAY >= s[_SPAN]
        return 1

    def _t(self, x, t):
        # the fit's regressor: x, the buckets' times (t: the oldest one's; weather.py may
        # answer with their degree days)
        return x
