# Device-side downlink authentication, end to end through the agent: a config or consent
# change that does not verify (wrong key, uplink-direction AAD, a reflected uplink frame,
# a downgraded or truncated MAC, a replayed or old downlink seq, also after a reboot) is
# refused and NOT applied: the agent's config, its config file, the policy's consent and
# the outbox's consent stay as they were. A valid command is the positive control.
# The frames come in through the transport's poll(), as on a board (Agent.service()).
# runtimes: micropython cpython
# heapsize: 256K

from firmware.agent import Agent
from firmware import store
from protocol import cbor, cose, framing, messages as M, wire
from mptutil import rmtree, scratch

KEY = bytes(range(32))
OTHER = bytes(range(100, 132))       # a neighbour device's key
DEV = "dev1"


class Tr:
    def __init__(self):
        self.inbox = []
        self.sent = []

    def poll(self):
        c = self.inbox
        self.inbox = []
        return c

    def send(self, f):
        self.sent.append(f)

    def ready(self):   # the link is up (firmware/transport.py: the agent sends only then)
        return True


class Sensor:
    def setup(self):
        pass

    def read(self):
        return 1500.0


BOARD = {"name": "t", "geometry": {"shape": "linear", "empty": 0, "full": 3000},
         "consumable": {"sku": "X", "capacity": 3000, "unit": "pages"}, "filters": [],
         "power": {"mode": "always_on", "sample_s": 600, "report_s": 3600, "wdt_ms": 0}}


def agent(root, consent=M.CONSENT_ORDER_ONLY):
    tr = Tr()
    a = Agent(BOARD, {"device_id": DEV, "key_bytes": KEY, "consent": consent}, root, transport=tr,
              sensor=Sensor(), button=None, verbose=False)
    return a, tr


def down(seq, p, key=KEY, aad=cose.AAD_DOWN, kid=b"bridge"):
    return wire.unframe(wire.pack(key, kid, seq, p, aad))


def custom(seq, p, alg, taglen, key=KEY):
    # a COSE_Mac0 with another alg (or none) and a valid HMAC for that header
    hdr = {6: cose.piv_bytes(seq)}
    if alg is not None:
        hdr[1] = alg
    prot = cbor.dumps(hdr)
    raw = cbor.dumps(p)
    tag = cose.hmac_sha256(key, cose.mac_input(prot, raw, cose.AAD_DOWN))[:taglen]
    out = bytearray(b"\xd1\x84")
    for x in (prot, {4: b"bridge"}, raw, tag):
        cbor.encode_into(out, x)
    return wire.unframe(framing.encode_frame(bytes(out)))


def feed(a, tr, *chunks):
    tr.inbox.extend(chunks)
    a.service()


def snapshot(a, root):
    return (dict(a.cfg), store.load(root + "state/config.json"), a.policy.consent, a.outbox.consent)


CFG = {0: M.CONFIG, 2: 60, 6: 50}            # report every minute, near-empty at 50 %
RAISE = {0: M.CONSENT, 1: M.CONSENT_FULL}    # full telemetry: a privacy change


def test_valid_config_and_consent_are_applied():
    root = scratch("sec", "/")
    a, tr = agent(root)
    feed(a, tr, down(1, CFG), down(2, RAISE))
    assert a.cfg["report_s"] == 60 and a.cfg["low_pct"] == 50
    assert store.load(root + "state/config.json")["report_s"] == 60
    # a raise is only a request until the customer presses the device's button
    assert a.policy.consent == M.CONSENT_ORDER_ONLY and a.outbox.consent == M.CONSENT_ORDER_ONLY
    a.press()
    assert a.policy.consent == M.CONSENT_FULL and a.outbox.consent == M.CONSENT_FULL
    assert a.downlink.applied == 2 and a.downlink.refused == 0
    rmtree(root)


def test_unverified_changes_refused_not_applied():
    root = scratch("sec", "/")
    a, tr = agent(root)
    before = snapshot(a, root)
    bad = [down(1, CFG, key=OTHER), down(2, RAISE, key=OTHER),           # a neighbour's key
           down(3, CFG, key=bytes(32)), down(4, RAISE, kid=DEV.encode(), key=OTHER),
           down(5, CFG, aad=cose.AAD_UP), down(6, RAISE, aad=cose.AAD_UP),  # uplink direction
           custom(7, RAISE, 5, 32), custom(8, RAISE, 0, 8), custom(9, RAISE, None, 8),  # downgrade
           custom(10, RAISE, 4, 4)]                                     # truncated tag
    c = bytearray(down(11, RAISE))
    c[len(c) - 4] ^= 0x01                                               # a flipped bit
    bad.append(bytes(c))
    feed(a, tr, *bad)
    assert snapshot(a, root) == before
    assert a.downlink.refused == len(bad) and a.downlink.applied == 0 and a.downlink.seq == -1
    assert not a.policy.may(M.LEVEL)                   # telemetry still not consented
    # the refusals did not burn sequence numbers: the real bridge's seq 1 still works
    feed(a, tr, down(1, RAISE))
    a.press()
    assert a.policy.consent == M.CONSENT_FULL
    rmtree(root)


def test_reflected_uplink_frame_refused():
    root = scratch("sec", "/")
    a, tr = agent(root, M.CONSENT_FULL)
    a.service()                      # the hello goes out
    assert tr.sent
    before = snapshot(a, root)
    feed(a, tr, *[wire.unframe(f) for f in tr.sent])
    # and an uplink-keyed frame that does carry a downlink type (a device echo forged as consent)
    feed(a, tr, wire.unframe(wire.pack(KEY, DEV, 99, {0: M.CONSENT, 1: 0}, cose.AAD_UP)))
    assert snapshot(a, root) == before and a.downlink.applied == 0
    rmtree(root)


def test_replayed_downlink_seq_refused_even_after_reboot():
    root = scratch("sec", "/")
    a, tr = agent(root)
    grant = down(5, {0: M.CONSENT, 1: M.CONSENT_FULL})
    revoke = down(6, {0: M.CONSENT, 1: M.CONSENT_NONE})
    feed(a, tr, grant)
    a.press()                                        # the customer confirms the grant
    feed(a, tr, revoke)
    assert a.policy.consent == M.CONSENT_NONE
    # the attacker recorded the grant and plays it back to restore telemetry
    feed(a, tr, grant)
    feed(a, tr, down(6, {0: M.CONSENT, 1: M.CONSENT_FULL}))              # same seq, other bytes
    feed(a, tr, down(4, CFG))                                             # an older seq
    a.press()                                                             # nothing to confirm
    assert a.policy.consent == M.CONSENT_NONE and a.cfg["report_s"] == 3600
    assert a.downlink.replayed == 3
    # power cut and reboot: the downlink seq was persisted before applying
    a2, tr2 = agent(root)
    feed(a2, tr2, grant, revoke, down(3, CFG))
    assert a2.policy.consent == M.CONSENT_NONE and a2.cfg["report_s"] == 3600
    assert a2.downlink.replayed == 3 and a2.downlink.applied == 0
    feed(a2, tr2, down(7, {0: M.CONSENT, 1: M.CONSENT_REMINDERS}))        # the next real one
    a2.press()
    assert a2.policy.consent == M.CONSENT_REMINDERS
    rmtree(root)
