"""Cumulative consumed quantity (milli-units), monotonic across refills and reboots.

The estimator's consumed_milli() (an int: counts are exact on float32 boards) restarts at 0 on a cold start and goes back to its last
checkpoint after a power cut. So we count only *increases* of it: the counter never goes
down. Its state is checkpointed in the same record as the estimator's (agent.checkpoint),
so after a cut both return to the same point and no interval is counted twice; a usage
message is only built right after a checkpoint, so a reported value is never taken back.
"""
from protocol import messages as M


class Usage:
    def __init__(self, st=None):
        st = st or {}
        # milli = base + (consumed - anchor), all ints (milli-units)
        self._base = int(st.get("b", 0))
        a = st.get("a")                   # estimator consumed_milli() where base was taken
        if a is not None and "v" not in st:
            a = int(a * 1000)             # firmware 0.3.0 kept it in units, as a float
        self._anchor = a
        self.milli = int(st.get("m", self._base))
        self.reported_t = st.get("r")     # clock.now() of the last usage report

    def update(self, consumed):
        """Feed estimator.consumed_milli(); returns the counter (milli-units)."""
        if consumed is None:
            return self.milli
        a = self._anchor
        if a is None or consumed < a:     # first sample, or the estimator restarted
            self._base = self.milli
            self._anchor = consumed
            return self.milli
        m = self._base + consumed - a
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
        return {"v": 2, "m": self.milli, "b": self._base, "a": self._anchor, "r": self.reported_t}
