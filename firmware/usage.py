"""Cumulative consumed quantity (milli-units), monotonic across refills and reboots.

The estimator's consumed_total() restarts at 0 on a cold start and goes back to its last
checkpoint after a power cut. So we count only *increases* of it: the counter never goes
down. Its state is checkpointed in the same record as the estimator's (agent.checkpoint),
so after a cut both return to the same point and no interval is counted twice; a usage
message is only built right after a checkpoint, so a reported value is never taken back.
"""
from protocol import messages as M


class Usage:
    def __init__(self, st=None):
        st = st or {}
        # milli = base + (consumed - anchor) * 1000: one conversion, so tiny per-sample
        # increases are not lost to rounding
        self._base = int(st.get("b", 0))
        self._anchor = st.get("a")        # estimator consumed_total where base was taken
        self.milli = int(st.get("m", self._base))
        self.reported_t = st.get("r")     # clock.now() of the last usage report

    def update(self, consumed):
        """Feed estimator.consumed_total(); returns the counter (milli-units)."""
        if consumed is None:
            return self.milli
        a = self._anchor
        if a is None or consumed < a:     # first sample, or the estimator restarted
            self._base = self.milli
            self._anchor = consumed
            return self.milli
        m = self._base + int((consumed - a) * 1000)
        if m > self.milli:
            self.milli = m
        return self.milli

    def due(self, t, period_s):
        return self.reported_t is None or t - self.reported_t >= period_s

    def payload(self, episode):
        return {0: M.USAGE, 1: self.milli, 2: episode}

    def reported(self, t):
        self.reported_t = t

    def state(self):
        return {"m": self.milli, "b": self._base, "a": self._anchor, "r": self.reported_t}
