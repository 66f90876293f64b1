"""The agent: sensor -> filters -> estimator -> policy -> outbox -> transport, and back.

Agent(board, prov, root) builds every part from the board file and provisioning and
restores persisted state from `<root>state/` and `<root>outbox/` (firmware/assemble.py,
boot-only code):
  est.json     estimator + usage + timers + downlink seq + clock base and wall offset (checkpoint)
  policy.json  consent, press counter, episode flags (written when they change)
  config.json  intervals and thresholds from config downlinks
  boot.json    boot counter
cycle() is one sample: read, filter, estimate, decide, report, then service().
service() is the fast part: button, downlinks, one frame out. main.run() loops both.
"""

from firmware import clock, store
from firmware.compat import const
from firmware.downlink import Downlink
from firmware.estimator import Estimator
from firmware.filters import Chain
from firmware.geometry import Geometry
from firmware.outbox import Outbox, OutboxFull
from firmware.policy import Policy
from firmware.scheduler import Timer, report_period
from firmware.usage import Usage
from protocol import cose, framing, messages as M

FW = "0.3.0"
_FAULT_N = const(5)        # consecutive empty reads before a sensor_fault event
_DAY = const(86400)

# the config downlink's keys 1..8, in order (protocol/schema.py names them the same)
CFG_KEYS = ("sample_s", "report_s", "near_empty_report_s", "lead_time_h", "margin_h", "low_pct",
            "lead_sd_h", "risk_pm")


def log(*a):
    print("[agent]", *a)


class Agent:
    # the parts firmware/assemble.py sets (annotations only: no RAM on the board)
    dev: str
    kid: bytes
    key: bytes
    capacity: float
    cfg: dict
    deep: bool
    geom: Geometry
    chain: Chain
    est: Estimator
    usage: Usage
    outbox: Outbox
    policy: Policy
    downlink: Downlink
    report: Timer
    sample: Timer
    fails: int
    cycles: int
    boot: int
    woke: bool

    def __init__(self, board, prov, root="/", transport=None, sensor=None, button=None,
                 verbose=True, est=None, ck=None, start=True):
        self.verbose = verbose
        # the parts are built by boot-only code that main.boot() drops once it ran
        from firmware import assemble
        assemble.parts(self, board, prov, root, transport, sensor, button, est, ck, start)

    def start(self, name):
        """Count the boot and queue the hello (not after a deep-sleep wake). main.boot()
        calls it last, once the board file and the boot-only code are freed: encoding
        and storing the hello is the peak of a boot in a 64 KB heap."""
        p = self._boot_path
        self.boot = (store.load(p) or {}).get("n", 0)
        if self.woke:
            from firmware import power
            power.wake(self)           # filters, fault count, the press that woke it
        else:
            self.boot += 1
            self._try(store.save, p, {"n": self.boot})
            self._try(self.policy.hello, FW, name, self.boot)

    # ---- the single entry point of uplink messages ------------------------------
    def _emit(self, payload):
        t = payload.get(0)
        d = self.outbox.dropped
        if d and (t == M.USAGE or t == M.HELLO):
            payload[3 if t == M.USAGE else 11] = d   # so the supplier can tell drops from loss
        seq = self.outbox.put(payload)   # the outbox checks consent (raises outside it)
        if self.verbose and seq is not None:
            log("queued", seq, "type", payload.get(0, M.LEVEL), "n=%d" % len(self.outbox))
        return seq

    def _try(self, fn, *a):
        try:
            return fn(*a)
        except (OutboxFull, OSError) as e:   # OSError: flash full (ENOSPC); keep running
            if self.verbose:
                log("not stored", repr(e))
            return None

    # ---- one sample ---------------------------------------------------------------
    def cycle(self):
        t = clock.now()
        self.cycles += 1
        self.sample.done(t, self.cfg["sample_s"])
        raw = self.sensor.read()
        q = self.geom.quantity(raw)
        v = self.chain.update(q)
        est = self.est
        pol = self.policy
        if raw is None:
            self.fails += 1
            if self.fails == _FAULT_N:
                self._try(pol.sensor, False, 1)
        elif self.fails:
            self.fails = 0
            pol.sensor(True)
        est.update(t, v, self.chain.quality() if v is not None else 0)
        rem = est.remaining()
        tte = est.tte()
        ep = est.episode
        fill = None if rem is None else int(rem * 100 / self.capacity + 0.5)
        if fill is not None and fill > 100:
            fill = 100
        self.last = (rem, fill, tte)
        self.usage.update(est.consumed_milli())
        if est.refilled:
            self._try(pol.refilled, ep, rem or 0)
            self._report_usage(t, ep)
        self._try(pol.assess, ep, tte)
        if self.usage.due(t, _DAY):
            self._report_usage(t, ep)
        if self.report.due(t):
            self.report.done(t, report_period(self.cfg, fill))
            if rem is not None and pol.may(M.LEVEL):
                self._try(self._emit, self._level(rem, fill, tte))
            self.checkpoint()
            if self.verbose:
                log("t=%dh q=%s fill=%s%% tte=%s ep=%d out=%d" % (
                    t // 3600, None if rem is None else int(rem), fill,
                    None if tte is None else "%dh" % (tte[0] // 3600), ep, len(self.outbox)))
        self.service()

    def _level(self, rem, fill, tte):
        p = {1: int(rem), 2: fill, 6: self.chain.quality()}
        r = self.est.rate_per_day()
        if r is not None and r > 0:
            p[3] = int(r + 0.5)
        if tte is not None:
            p[4] = int(tte[0] // 3600)
            if tte[2] is not None:
                p[5] = int((tte[2] - tte[1]) // 7200)   # half-width of the band, hours
        return p

    def _report_usage(self, t, ep):
        if not self.policy.may(M.USAGE):
            return
        self.usage.reported(t)
        if self.checkpoint():       # so the value sent is never taken back by a reboot
            self._try(self._emit, self.usage.payload(ep))

    def checkpoint(self):
        try:
            store.save(self._est_path, {"est": self.est.state(), "use": self.usage.state(),
                                        "rep": self.report.at, "off": clock.state()})
            self.downlink.checkpoint()
            return True
        except OSError:     # flash full: keep running on the last checkpoint
            return False

    # ---- the fast part ------------------------------------------------------------
    def service(self):
        if self.wdt is not None:
            self.wdt.feed()
        b = self.button
        if b is not None and b.pressed():
            self.press()
        for chunk in self.tr.poll():
            p = self._try(self.downlink.handle, chunk)
            if self.verbose:
                log("downlink", p[0] if p else "refused")
        # nothing is taken from the outbox while the link is down (Wi-Fi joining): a frame
        # is in flight, its ack window running, only once the link can carry it
        due = self.outbox.next_due(clock.ms()) if self.tr.ready() else None
        if due is not None:
            seq, data = due
            self.tr.send(framing.encode_frame(cose.encode(self.key, self.kid, seq, data, cose.AAD_UP)))

    # ---- downlink actions (called by Downlink) --------------------------------------
    def on_ack(self, seq):
        self.outbox.ack(seq)

    def on_config(self, p):
        for k in p:
            if k:
                self.cfg[CFG_KEYS[k - 1]] = p[k]
        store.save(self._cfg_path, self.cfg)
        self.report.done(clock.now() - self.report.period, self.cfg["report_s"])

    def press(self):
        """One button press: an order request, or the customer's confirmation of a
        pending consent raise (firmware/policy.py)."""
        self._try(self.policy.button)
        self.outbox.set_consent(self.policy.consent)

    def on_consent(self, level):
        if level <= self.policy.consent:
            self.outbox.set_consent(level)   # purge what the lower level no longer allows
        self._try(self.policy.set_consent, level)   # a raise waits for press()

    def on_status(self, key, status):
        self.policy.order_status(key, status)

    def on_time(self, unix):
        clock.set_wall(unix)

    def on_rekey(self, nonce):
        from firmware import rekey     # rare: its code is loaded only for a rotation
        rekey.apply(self, nonce)