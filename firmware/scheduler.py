"""When to sample, report, checkpoint and sleep (all in clock.now() seconds).

Timers are plain deadlines, not periodic callbacks: after a long pause (deep sleep, a
stalled host) a timer fires once, not once per missed period.
"""


class Timer:
    def __init__(self, period, first=None):
        self.period = period
        self.at = first          # None: due at once

    def due(self, t):
        return self.at is None or t >= self.at

    def done(self, t, period):
        """Ran at t; next due a period (possibly a new one: config can change it) later."""
        self.period = period
        self.at = t + period

    def left(self, t):
        return 0 if self.at is None else max(0, self.at - t)


def report_period(cfg, fill_pct):
    """Report more often near empty: near_empty_report_s below low_pct."""
    if fill_pct is not None and fill_pct < cfg["low_pct"]:
        return min(cfg["near_empty_report_s"], cfg["report_s"])
    return cfg["report_s"]
