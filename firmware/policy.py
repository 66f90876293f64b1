"""The four connected strategies, under the customer's consent level.

  respond to desire   a button press -> one order_request (trigger=button), idempotency key
                      "<device>-b<press counter>"; the counter is persisted *before* the
                      message is stored, so two presses never share a key (a cut in between
                      loses that press rather than merging it with the next one)
  curated offering    hello carries the consumable identity from the board file
  coach behaviour     risk_threshold() says the chance of running empty before a box ordered
                      now arrives exceeds the risk setting -> one low_soon per depletion
                      episode; re-armed by a new episode or by tte rising above 1.5 x that
                      threshold (hysteresis)
  automatic execution consent >= automatic: one order_request per episode (trigger=automatic,
                      key "<device>-e<episode>"); persisted *after* it is stored: a cut in
                      between re-sends the same key, which the supplier deduplicates

Consent: a message is only built when protocol.messages.required_consent() of its kind is
within the level (checked here with the same function on the would-be payload's kind, and
again by the outbox, the single gate every uplink passes). `emit(payload)` stores a message
(Outbox.put) and returns its seq or None; it raises when the outbox refuses.

Who may change consent: a consent downlink may lower it at once, but a raise is only a
request: it waits, in RAM (a reboot or deep sleep drops it), up to CONFIRM_MS of real time
(a person's time, whatever the simulated world's speed) for the customer to press the
device's button, and that press confirms it instead of ordering. So neither a bridge nor a
stolen key can widen what the device shares (docs/THREAT_MODEL.md T17). A board without a
button can only be raised by re-provisioning (`consumables deploy --consent`).
"""
from math import acos, cos, log, sqrt

from firmware import clock, store
from firmware.compat import const
from protocol import messages as M

_KEEP_ORDERS = const(4)   # order_status records kept (newest)
CONFIRM_MS = 600000   # how long a requested consent raise waits for the customer's press


def risk_threshold(cfg, tte):
    """Time to empty (s) below which P(empty before a box ordered now arrives) > risk.

    tte: the estimator's (point d, lo, hi) 80 % band, or a bare point forecast (no spread).
    The empty time is T = d / (1 + e), e the rate's relative error; the arrival A is
    normal, mean lead_time_h + margin_h + sample_s (a board that passes this reading by
    orders at the next one at the earliest), sigma lead_sd_h (default 24 h). The rate's
    error is heavy-tailed, so e is taken as Student t with 4 degrees of freedom scaled to
    the 80 % band (lo = d / (1 + 1.2816 c): e = 0.8359 c t4, 0.8359 = 1.2816 / t4's 90 %
    point 1.5332): on the scenario suite (tests/benchmarks/bench_forecast.py) a normal e's
    2 % lower point was crossed 3.8 % of the time outside step changes, t4's 1.9 %.
    Empty first <=> e > d / A - 1; with each part's own upper-risk point (z for A, zt for
    e) added in quadrature, P > risk <=> d < mu + sqrt((z sd)^2 + (zt c)^2 (mu^2 + sd^2)).
    With no spread at all this is the point rule (tte < lead + margin + sample_s).
    Against the exact chance of this model (a numeric integral, tests/device/
    mpt_policy.py) 2 % asked is 2.1-2.8 % for bands of +-5 % to +-30 %."""
    mu = (cfg.get("lead_time_h", 72) + cfg.get("margin_h", 24)) * 3600 + cfg.get("sample_s", 0)
    sd = cfg.get("lead_sd_h", 24) * 3600
    c = 0
    if isinstance(tte, tuple):
        d, lo, hi = tte
        if d <= 0:
            return mu + 1  # empty now
        c = (d / lo - 1) / 1.2816 if lo > 0 else 3   # the band is 80 % two-sided: +-1.2816 sigma
    p = cfg.get("risk_pm", 20) / 1000
    if p <= 0 or p >= 0.5 or sd <= 0 and c <= 0:
        return mu
    # Abramowitz & Stegun 26.2.22: upper p-quantile of N(0,1), |error| < 3e-3
    t = sqrt(-2 * log(p))
    z = t - (2.30753 + 0.27061 * t) / (1 + t * (0.99229 + 0.04481 * t))
    # Student t, 4 degrees of freedom: its quantile in closed form (the cubic its CDF
    # solves; Shaw, "Sampling Student's T distribution", J. Comp. Finance 9(4), 2006)
    a = sqrt(4 * p * (1 - p))
    zt = 1.6718 * sqrt(cos(acos(a) / 3) / a - 1)   # 0.8359 * 2 sqrt(q - 1)
    return mu + sqrt((z * sd) ** 2 + (zt * c) ** 2 * (mu * mu + sd * sd))


class Policy:
    def __init__(self, device_id, consumable, cfg, emit, path=None, consent=M.CONSENT_ORDER_ONLY):
        self.device = device_id
        self.item = consumable or {}
        self.cfg = cfg              # shared dict: lead_time_h, margin_h (updated by config)
        self.emit = emit
        self.path = path
        st = (store.load(path) if path else None) or {}
        self.consent = st.get("c", consent)
        self.presses = st.get("p", 0)
        self.low_ep = st.get("lo", -1)      # episode whose low_soon was sent; -1 = armed
        self.auto_ep = st.get("au", -1)     # episode whose automatic order was sent
        self.fault = st.get("f", 0)         # sensor_fault reported and not yet cleared
        self.orders = st.get("o", {})       # idempotency key -> last order status
        self.episode = st.get("e", 0)
        self.pending = None                 # (level, clock.ms()): a raise awaiting the press

    def save(self):
        if self.path:
            store.save(self.path, {"c": self.consent, "p": self.presses, "lo": self.low_ep,
                                   "au": self.auto_ep, "f": self.fault, "o": self.orders,
                                   "e": self.episode})

    def may(self, t, kind=None, trigger=None):
        """Would a message of type t (event kind, trigger) be within the consent?"""
        probe = {0: t}
        if kind is not None:
            probe[1] = kind
        if trigger is not None:
            probe[5] = trigger
        if t == M.LEVEL:
            probe = {}
        return M.required_consent(probe) <= self.consent

    def _event(self, kind, value=None, key=None, trigger=None):
        p = {0: M.EVENT, 1: kind, 2: self.episode}
        if key is not None:
            p[3] = key
        if value is not None:
            p[4] = value
        if trigger is not None:
            p[5] = trigger
        return self.emit(p)

    # ---- curated offering --------------------------------------------------
    def hello(self, fw, board_name, boot=None):
        if not self.may(M.HELLO):
            return None
        it = self.item or {}
        unit = it.get("unit", "%")
        p = {0: M.HELLO, 1: M.PROTOCOL_VERSION, 2: fw, 3: board_name, 4: it.get("sku", ""),
             6: int(it.get("capacity", 100)),
             7: M.UNITS.index(unit) if unit in M.UNITS else len(M.UNITS) - 1,
             9: self.consent}
        if it.get("model"):
            p[5] = it["model"]
        if it.get("refills"):
            # board file: [{"sku": ..., "quantity": ...}] (or plain sku texts); at most 16
            r = []
            for x in it["refills"][:16]:
                r.append(x["sku"] if isinstance(x, dict) else x)
            p[8] = r
        if boot is not None:
            p[10] = boot
        self.item = None   # sent once per boot (firmware/agent.py): the board's dict goes
        return self.emit(p)

    # ---- respond to desire -------------------------------------------------
    def button(self):
        """One debounced press. Returns the seq of the order request, or None. While a
        consent raise is pending the press confirms it instead (and orders nothing)."""
        p = self.pending
        if p is not None:
            self.pending = None
            if clock.ms_diff(clock.ms(), p[1]) <= CONFIRM_MS:
                self._consent(p[0])
                return None
        if not self.may(M.EVENT, M.EV_ORDER_REQUEST, M.BY_BUTTON):
            return None
        self.presses += 1
        self.save()
        return self._event(M.EV_ORDER_REQUEST, key="%s-b%d" % (self.device, self.presses),
                           trigger=M.BY_BUTTON)

    # ---- coach + automatic execution -----------------------------------------
    def assess(self, episode, tte):
        """After each estimate: episode number and the estimator's tte() (point, lo, hi)
        band, a bare point forecast in seconds, or None."""
        if episode != self.episode:
            self.episode = episode
            self.save()
        if tte is None:
            return
        th = risk_threshold(self.cfg, tte)
        tte_s = tte[0] if isinstance(tte, tuple) else tte
        changed = False
        if self.low_ep != -1 and (self.low_ep != episode or tte_s > th * 1.5):
            self.low_ep = -1                   # re-armed
            changed = True
        if tte_s < th:
            if self.low_ep == -1 and self.may(M.EVENT, M.EV_LOW_SOON):
                self._event(M.EV_LOW_SOON, value=int(tte_s // 3600))
                self.low_ep = episode
                changed = True
            if self.auto_ep != episode and self.may(M.EVENT, M.EV_ORDER_REQUEST, M.BY_AUTOMATIC):
                self._event(M.EV_ORDER_REQUEST, key="%s-e%d" % (self.device, episode),
                            trigger=M.BY_AUTOMATIC)
                self.auto_ep = episode
                changed = True
        if changed:
            self.save()

    def refilled(self, episode, level):
        self.episode = episode
        if self.may(M.EVENT, M.EV_REFILL):
            self._event(M.EV_REFILL, value=int(level))
        self.save()

    def sensor(self, ok, code=0):
        """Report a sensor fault once; clear it after the sensor reads again."""
        if ok:
            if self.fault:
                self.fault = 0
                self.save()
            return
        if not self.fault and self.may(M.EVENT, M.EV_SENSOR_FAULT):
            self._event(M.EV_SENSOR_FAULT, value=code)
            self.fault = 1
            self.save()

    # ---- downlink-driven ---------------------------------------------------------
    def set_consent(self, level):
        """A consent downlink: a lower (or equal) level applies now; a higher one waits for
        the customer's press (see the module notes). Returns the level now in force."""
        if level > self.consent:
            self.pending = (level, clock.ms())
            return self.consent
        self.pending = None
        self._consent(level)
        return level

    def _consent(self, level):
        old = self.consent
        self.consent = level
        self.save()
        if level != old:
            self._event(M.EV_CONSENT_CHANGED, value=level)

    def order_status(self, key, status):
        o = self.orders
        o[key] = status
        while len(o) > _KEEP_ORDERS:
            for k in o:          # dicts keep insertion order: drop the oldest
                del o[k]
                break
        self.save()
