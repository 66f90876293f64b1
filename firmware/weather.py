# Heating fuels: the estimator's degree-day (K-factor) mode, for a board that knows an
# outdoor temperature (a sensor, or the `weather` downlink, protocol/SPEC.md).
#
# Why: heating-oil and propane use follows the outdoor temperature; the trade forecasts a
# tank with the K-factor, usage per heating degree day (HDD: max(0, base - daily mean
# temperature), summed over days), learnt from past deliveries. Here the estimator learns
# it from its own buckets: firmware/estimator.py's fit regresses the level on the buckets'
# cumulative degree days instead of their time (the same pooled, robust fit: no second
# regressor's code in RAM), a base load counted as _HADD degree days a day. It forecasts
# by walking the days ahead at K x the expected degree days of each: the weather
# downlink's daily means, then its weekly normals, then the last week's per day.
#
# RAM: loaded only on a board whose file says the consumable is a heating fuel (consumable
# "weather": true: it has an outdoor temperature, or the bridge sends the weather), or when
# a weather downlink arrives (firmware/downlink.py converts the plain estimator, its state
# carried over), or at boot from a checkpoint of this estimator (it has a 13th entry, the
# ring below). Then: one more ring of 84 + 34 floats (the buckets' degree days, then the
# weather and this mode's state) and this code; the plain estimator spends nothing on it
# but two hooks (_t, _r). Every name here is a qstr in RAM for good, and the default boot
# is 4 names short of the 32-bit build's next qstr pool (~4.6 KB): so the module's name
# is one the downlink needs anyway ("weather"), its class is "Estimator", and every other
# name (the base's alias, the ring, methods, arguments) is one the boot already has. The
# module's own two (its dotted name and its file) are all it adds. That saved 4.7 KB of
# a heating board's boot (63.2 -> 58.5 KB); it still needs a 66K heap, not 64K: 64K fails
# at boot to find 616 contiguous bytes for the base's state array (test_memory32.py),
# and its walk over the days ahead leaves ~7 KB of float garbage a cycle.
from array import array
from binascii import a2b_base64
from io import BytesIO
from math import inf, nan, sqrt

from firmware.estimator import Estimator as _base   # (names: see RAM above)
from firmware.compat import const

# slots of the estimator's state array (firmware/estimator.py, same names; its underscore
# const() names are folded at compile time, not importable on MicroPython;
# tests/device/mpt_forecast.py checks they match)
_BS = const(8)
_TNOW = const(9)
_Q = const(14)
_RATE = const(15)
_RSIG = const(16)
_SDEV = const(17)
_VALID = const(18)
_BH = const(26)
_BN = const(27)
_AW = const(28)
_PW = const(32)
_NACC = const(22)
# this estimator's own ring self._ring: the buckets' degree days, then from o = nbuckets:
_WDAY = const(0)       # weather downlink: unix day of its first daily mean,
_WND = const(1)        # how many daily means, how many weekly normals after them
_WNN = const(2)
_WX = const(3)         # 16 daily means, then 8 weekly normals
_TOUT = const(27)      # outdoor temperature from a sensor (NaN: none; the weather's then)
_HCUM = const(28)      # heating degree days since t0 (+ _HADD a day), integrated at updates
_TH = const(29)        # time (days since t0) _HCUM was integrated to
_AH = const(30)        # open bucket: sum w*H
_TK = const(31)        # since when (days) the temperature was known without a break; NaN: not
_KF = const(32)        # degree-day mode: usage per degree day (the K-factor); 0: not in it
_HR = const(33)        # recent degree days a day (7-day average): the forecast without weather
_DR = const(34)        # temperature-blind: the newest week's rate minus the window's
_NW = const(35)
_HADD = const(2)    # hot water and losses, in degree days a day: the base load a K-factor
                    # alone would miss in mild weather (an assumption, not learnt)
_WVAR = const(81)   # (C day)^2 a day: the spread of degree days summed over days past the
                    # daily means. A day's mean is Gaussian around its normal with sigma
                    # ~3 C in mid-latitude winters (James & Arguez, J. Climate 28, 2015),
                    # and persists (Koscielny-Bunde et al., Phil. Mag. B 77, 1998): taken
                    # as AR(1) with lag-1 correlation 0.8, a sum over n days then has
                    # variance 3^2 (1 + 0.8) / (1 - 0.8) n = 81 n (an assumption, not learnt;
                    # the persistence is long-ranged, so long sums spread more)
_HBASE = const(18)  # base temperature of a heating degree day, C (65 F = 18.3 C in the
                    # US trade, 15.5 C in the UK): no heating load above it


def estimator(e, st=None):
    """e (a plain estimator) as this one, its state carried over; e itself if it is one.
    st: a checkpoint (Estimator.state() read back): its 13th entry, if any, is this
    estimator's ring (a damaged one is ignored: the ring starts afresh)."""
    if not isinstance(e, Estimator):
        h = Estimator(e.capacity, nbuckets=len(e._bt))
        for k in ("_t0", "episode", "rejected", "consumed", "refilled", "_s", "_bt", "_bq",
                  "_bw", "_bg", "_u", "_e", "_ix"):
            setattr(h, k, getattr(e, k))
        e = h
    if st and len(st) > 12:
        try:
            r = a2b_base64(st[12])
            if len(r) == 4 * len(e._ring):
                BytesIO(r).readinto(e._ring)   # no copy (see assemble.restore)
        except (ValueError, TypeError):
            pass
    return e


def downlink(a, p):
    """A weather downlink to agent a: its estimator becomes this one (the state carried
    over, checkpointed as this one from now on) and takes the weather."""
    a.est = e = estimator(a.est)
    e.weather(p)


class Estimator(_base):
    """An Estimator that learns usage per heating degree day once the outdoor temperature
    is known over its whole window, and forecasts with the expected weather."""

    def __init__(self, capacity, **kw):
        # this ring first: 476 B, the longest run of free blocks the boot needs; made after
        # the base's rings, it found none in 66K (tests/host/test_memory32.py). Sized for
        # the base's default ring (nbuckets 84, firmware/estimator.py), made again if not.
        o = kw.get("nbuckets", 84)
        w = array("f", bytes(4 * (o + _NW)))
        _base.__init__(self, capacity, **kw)
        o = len(self._bt)
        if len(w) != o + _NW:
            w = array("f", bytes(4 * (o + _NW)))
        self._ring = w
        w[o + _TOUT] = w[o + _TK] = nan

    def state(self):
        # the plain estimator's checkpoint and this ring (store.py writes it as base64);
        # assemble.py restores a plain estimator from it, then estimator() above
        return _base.state(self) + [self._ring]

    def weather(self, p):
        """The weather downlink's payload (protocol/SPEC.md): 1 unix day of 2's first entry,
        2 daily mean temperatures from that day on (today's and earlier days' are the
        temperature when there is no sensor), 3 weekly normals for the weeks after them;
        temperatures as (C + 60) * 2; at most 16 and 8 (the rest is ignored). Or an
        outdoor sensor's reading now, in C (a number; None: no longer known): one method
        for both, since every name is a qstr for good (see RAM above)."""
        w, o = self._ring, len(self._bt)
        if not isinstance(p, dict):
            w[o + _TOUT] = nan if p is None or not -90 < p < 60 else p
            return
        d, n = p[2][:16], p.get(3, [])[:8]
        w[o + _WDAY] = p[1]
        w[o + _WND] = len(d)
        w[o + _WNN] = len(n)
        for i, x in enumerate(d + n):
            w[o + _WX + (i if i < len(d) else 16 + i - len(d))] = x / 2 - 60

    def at(self, d):
        # the expected daily mean temperature on unix day d (an int), NaN when not known
        w, o = self._ring, len(self._bt)
        i = int(d - w[o + _WDAY])
        n = int(w[o + _WND])
        if 0 <= i < n:
            return w[o + _WX + i]
        i = (i - n) // 7
        if 0 <= i < w[o + _WNN]:
            return w[o + _WX + 16 + i]
        return nan

    def update(self, t, q, quality=10):
        # degree days up to now at the temperature in force, then the plain update
        s, w, o = self._s, self._ring, len(self._bt)
        if self._t0 is not None and abs(t) < inf and t - self._t0 >= s[_TNOW]:
            td = (t - self._t0) / 86400
            c = w[o + _TOUT]
            if c != c:
                c = self.at(t // 86400)
            if c != c:
                w[o + _TK] = nan     # a break: degree-day mode waits for a window without one
            else:
                if w[o + _TK] != w[o + _TK]:
                    w[o + _TK] = w[o + _TH] = td
                dd = td - w[o + _TH]
                h = max(0, _HBASE - c) + _HADD
                w[o + _HCUM] += h * dd
                w[o + _HR] += (h - w[o + _HR]) * min(1, dd / 7)
                w[o + _TH] = td
        _base.update(self, t, q, quality)

    def _accept(self, td, q, w, L, P, R):
        _base._accept(self, td, q, w, L, P, R)
        h, o = self._ring, len(self._bt)
        h[o + _AH] += w * h[o + _HCUM]

    def _shift(self, td, Lp):
        s, w, o = self._s, self._ring, len(self._bt)
        if s[_NACC] <= 2:
            w[o + _AH] = 0       # warm-up: the open bucket starts over
        pw = s[_PW]
        _base._shift(self, td, Lp)
        w[o + _AH] += pw * w[o + _HCUM]

    def _close(self):
        s, w, o = self._s, self._ring, len(self._bt)
        if s[_AW] > 0:
            w[int(s[_BH])] = w[o + _AH] / s[_AW]
            w[o + _AH] = 0
        _base._close(self)
        # temperature-blind (not in degree-day mode): the heating load follows a season the
        # device cannot see; how far the newest week's rate moved from the window's is the
        # band's measure of it (_r below)
        k = int(7 * 86400 // s[_BS])
        w[o + _DR] = 0           # until two weeks are in the window
        if not w[o + _KF] and s[_VALID] and s[_BN] >= 2 * k:
            a = s[_RATE], s[_RSIG], s[_SDEV], s[_Q]
            self._fit(k)
            w[o + _DR] = s[_RATE] - a[0]
            s[_RATE], s[_RSIG], s[_SDEV], s[_Q] = a
            s[_VALID] = 1

    def _t(self, x, t):
        # degree-day mode when the temperature was known since the oldest bucket (t)
        w, o = self._ring, len(self._bt)
        tk = w[o + _TK]
        on = tk == tk and t >= tk
        w[o + _KF] = 1 if on else 0
        return w if on else x

    def _fit(self, k=0):
        s, w, o = self._s, self._ring, len(self._bt)
        old = w[o + _KF]
        if not _base._fit(self, k):
            w[o + _KF] = old       # no new fit: the last one stands
        elif w[o + _KF]:
            # the slope was per degree day (the K-factor): the rate is K x the recent
            # degree days a day
            f = s[_RATE]
            s[_RATE] = f * w[o + _HR]
            s[_RSIG] *= w[o + _HR]
            # the newest days alone (the change tests, k buckets) leave the K-factor be
            w[o + _KF] = old if k else f

    def _r(self, L, r, s):
        # degree-day mode: walk the days ahead at K x each one's expected degree days (the
        # weather's, else the last week's), until L is used; the K-factor's relative error
        w, o = self._ring, len(self._bt)
        k = w[o + _KF]
        if k <= 0:
            # temperature-blind: the season may move the rate on as it did lately. The
            # window's rate lags the newest week's by ~7 days (one DR now), and a rate that
            # keeps moving DR a week averages DR T / 14 more over the T days to empty. Half
            # of that is taken as a shift (a damped trend: a season turns, a cold spell
            # ends), all of it as uncertainty. bench_forecast.py, heating, 10 seeds: median
            # error 22.8 % with no shift, 19.1 % with the newest week's rate (DR), 18.5 %
            # with this, 20.0 % with 3/4 of it (trailing 7 days 18.6 %); band 76 %
            u = w[o + _DR] * (1 + L / r / 14)
            return r + u / 2, sqrt(s * s + u * u)
        t = (self._t0 + self._s[_TNOW]) / 86400     # unix days
        d = used = a = 0
        n = w[o + _WDAY] + w[o + _WND] - t    # days until the daily means end
        while d < 730:
            c = self.at(int(t + d))
            u = k * (max(0, _HBASE - c) + _HADD if c == c else w[o + _HR])
            f = 1 - (t + d) % 1   # the rest of this day
            if d >= n and u > k * _HADD:
                a += f            # a heating day past the daily means: a normal's, at best
            if used + u * f >= L:
                d += (L - used) / u
                # the K-factor's error, and the weather's spread around its normals
                return L / d, L / d * sqrt((s / r) ** 2 + _WVAR * a * (k / L) ** 2)
            used += u * f
            d += f
        return r, s
