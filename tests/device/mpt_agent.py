# The whole agent on the simulated HAL: a month of toner use on a manual clock, a loopback
# bridge that verifies and acks every frame, button, consent, config and reboots.
# heapsize: 256K
# timeout: 120
import sys
if sys.implementation.name != "micropython":
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
import json

from firmware import clock, hal, hal_sim, provision
from firmware.agent import Agent
from firmware.transport import Null
from protocol import cbor, cose, messages as M, schema, wire
from mptutil import rmtree, scratch

KEY = bytes(range(32))
PROV = {"device_id": "toner1", "key": "".join("%02x" % b for b in KEY)}


def board(**world):
    with open("boards/virtual.json") as f:
        b = json.load(f)
    w = b["world"]
    w.update({"speed": 0, "ctl": None, "noise": 0.005, "spike_p": 0, "dropout_p": 0,
              "refill_after_days": None})
    w.update(world)
    return b


class Bridge:
    """Verifies uplink frames with the device key, records payloads, acks (optionally)."""
    def __init__(self, tr, ack=True):
        self.tr = tr
        self.ack = ack
        self.got = {}      # seq -> payload
        self.out_of_order = 0
        self.top = -1
        self.levels = 0
        self.dseq = 100

    def pump(self):
        f = self.tr.last
        if f is None:
            return
        self.tr.last = None
        kid, seq, p = wire.unpack(wire.unframe(f), lambda k: KEY, allowed=schema.UPLINK)
        assert kid == b"toner1"
        assert seq not in self.got or self.got[seq] in (p, {}), (seq, p, self.got[seq])
        if seq > self.top:
            self.top = seq
        elif seq < self.top and seq not in self.got:
            self.out_of_order += 1   # a new seq lower than one already seen
        if p.get(0, M.LEVEL) == M.LEVEL:
            if seq == self.top:
                self.levels += 1     # counted, not kept: a month of them fills the heap
        else:
            self.got[seq] = p
        if self.ack:
            self.send({0: M.ACK, 1: seq})

    def send(self, p):
        self.dseq += 1
        self.tr.inbox.append(wire.unframe(wire.pack(KEY, b"bridge", self.dseq, p, cose.AAD_DOWN)))

    def msgs(self):
        return [self.got[s] for s in sorted(self.got)]

    def events(self, kind):
        return [p for p in self.msgs() if p.get(0) == M.EVENT and p[1] == kind]

    def of(self, t):
        return [p for p in self.msgs() if p.get(0, M.LEVEL) == t]


class FakeButton:
    def __init__(self):
        self.n = 0

    def pressed(self):
        if self.n:
            self.n -= 1
            return True
        return False


def make(root, b, consent=M.CONSENT_FULL, tr=None, w=None):
    if w is None:
        w = hal.world(b)
    clock.use_world(w)
    p = provision.check(dict(PROV, consent=consent))
    btn = FakeButton()
    tr = tr or Null()
    a = Agent(b, p, root, transport=tr, button=btn, verbose=False)
    return a, w, tr, btn


def run(a, w, br, n, step=600):
    for _ in range(n):
        w.advance(step)
        a.cycle()
        for _ in range(3):          # let the bridge answer and the outbox drain
            br.pump()
            a.service()
            br.pump()


def test_month_of_toner_reports_reminder_and_automatic_order_once():
    root = scratch("ag", "/")
    a, w, tr, btn = make(root, board(rate_per_day=150, refills=[24]), M.CONSENT_FULL)
    br = Bridge(tr)
    run(a, w, br, 32 * 144)        # 32 days at 10-min samples
    hello = br.of(M.HELLO)
    assert len(hello) == 1 and hello[0][4] == "TONER-TN2420" and hello[0][9] == M.CONSENT_FULL
    assert br.levels > 500, br.levels
    low = br.events(M.EV_LOW_SOON)
    orders = br.events(M.EV_ORDER_REQUEST)
    assert len(low) >= 1 and len(low) <= 2, low
    auto = [o for o in orders if o[5] == M.BY_AUTOMATIC]
    assert len(auto) >= 1 and len(set(o[3] for o in auto)) == len(auto), auto
    assert auto[0][3] == "toner1-e%d" % auto[0][2]
    assert len(br.events(M.EV_REFILL)) == 1
    us = br.of(M.USAGE)
    assert len(us) >= 30 and [u[1] for u in us] == sorted(u[1] for u in us)
    assert br.out_of_order == 0                    # sent in seq order
    assert len(a.outbox) == 0                      # all acked
    rmtree(root)


def test_no_level_reports_without_full_consent_and_consent_downlink():
    root = scratch("ag", "/")
    a, w, tr, btn = make(root, board(), M.CONSENT_ORDER_ONLY)
    br = Bridge(tr)
    run(a, w, br, 50)
    assert br.levels == 0 and br.of(M.USAGE) == []
    btn.n = 1
    run(a, w, br, 2)
    o = br.events(M.EV_ORDER_REQUEST)
    assert len(o) == 1 and o[0][3] == "toner1-b1" and o[0][5] == M.BY_BUTTON
    br.send({0: M.CONSENT, 1: M.CONSENT_FULL})
    run(a, w, br, 1)
    assert br.levels == 0 and a.policy.pending      # a raise waits for the customer's press
    btn.n = 1                                       # a minute later the press confirms it
    run(a, w, br, 1, step=60)
    run(a, w, br, 10)
    assert len(br.events(M.EV_ORDER_REQUEST)) == 1
    cc = br.events(M.EV_CONSENT_CHANGED)
    assert len(cc) == 1 and cc[0][4] == M.CONSENT_FULL
    assert br.levels >= 1
    rmtree(root)


def test_forged_downlink_refused_and_config_applied():
    root = scratch("ag", "/")
    a, w, tr, btn = make(root, board(), M.CONSENT_FULL)
    br = Bridge(tr)
    tr.inbox.append(wire.unframe(wire.pack(bytes(32), b"bridge", 500, {0: M.CONSENT, 1: 0},
                                           cose.AAD_DOWN)))
    run(a, w, br, 2)
    assert a.policy.consent == M.CONSENT_FULL and a.downlink.refused == 1
    br.send({0: M.CONFIG, 2: 1200, 4: 24})
    run(a, w, br, 2)
    assert a.cfg["report_s"] == 1200 and a.cfg["lead_time_h"] == 24
    a2, w2, tr2, _ = make(root, board(), M.CONSENT_FULL)
    assert a2.cfg["report_s"] == 1200                  # persisted
    br.send({0: M.TIME, 1: 1700000000})
    run(a, w, br, 1)
    assert abs(clock.wall() - 1700000000) < 700
    rmtree(root)


def test_reboot_without_acks_keeps_messages_and_never_reuses_seq():
    root = scratch("ag", "/")
    b = board()
    a, w, tr, btn = make(root, b, M.CONSENT_FULL)
    br = Bridge(tr, ack=False)
    run(a, w, br, 30)
    pending = a.outbox.seqs()
    assert len(pending) > 3, pending
    types = dict((s, M.msg_type(cbor.loads(a.outbox.read(s)))) for s in pending)
    top = a.outbox.next_seq
    # power cut: a new agent on the same flash, the world (and its clock) goes on
    tr2 = Null()
    a2 = Agent(b, provision.check(dict(PROV, consent=M.CONSENT_FULL)), root, transport=tr2,
               button=FakeButton(), verbose=False)
    assert [s for s in pending if s in a2.outbox.seqs()] == [s for s in pending
                                                            if s in a2.outbox.seqs()]
    kept = [s for s in pending if s not in a2.outbox.seqs()]
    for s in kept:   # only level reports (room) or the old hello (superseded) may go
        assert types[s] in (M.LEVEL, M.HELLO), (s, types[s])
    br2 = Bridge(tr2)
    run(a2, w, br2, 30)
    new = [s for s in br2.got if s >= top]
    assert new and min(new) >= top
    hello = [s for s, p in br2.got.items() if p.get(0) == M.HELLO]
    # the new boot's hello has a fresh seq (the old one, oldest in the outbox and maybe in
    # flight, is not superseded: a dropped message must never have been delivered)
    assert hello and max(hello) >= top
    assert len(a2.outbox) == 0
    rmtree(root)


def test_deep_sleep_wake_keeps_state_and_sends_no_hello():
    root = scratch("ag", "/")
    b = board(rate_per_day=300)
    a, w, tr, btn = make(root, b, M.CONSENT_AUTOMATIC)
    br = Bridge(tr)
    run(a, w, br, 144 * 8)
    n_auto = len(br.events(M.EV_ORDER_REQUEST))
    assert n_auto == 1, (n_auto, a.last, a.est.episode)
    a.checkpoint()
    hal_sim._cause = hal.DEEPSLEEP_RESET
    try:
        a2, _, tr2, _ = make(root, b, M.CONSENT_AUTOMATIC, w=w)   # same world goes on
        br2 = Bridge(tr2)
        run(a2, w, br2, 20)
        assert br2.of(M.HELLO) == []
        assert br2.events(M.EV_ORDER_REQUEST) == []      # same episode: already ordered
        assert a2.est.episode == a.est.episode
    finally:
        hal_sim._cause = hal.PWRON_RESET
    rmtree(root)
