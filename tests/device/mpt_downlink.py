# firmware/downlink.py: verify, refuse, replay protection (persisted), dispatch.
# runtimes: micropython cpython
# heapsize: 128K

from firmware.downlink import Downlink
from protocol import cose, messages as M, schema, wire
from mptutil import rmtree, scratch

KEY = bytes(range(32))


class Rec:
    def __init__(self):
        self.calls = []

    def on_ack(self, s):
        self.calls.append(("ack", s))

    def on_config(self, p):
        self.calls.append(("config", p))

    def on_consent(self, lv):
        self.calls.append(("consent", lv))

    def on_status(self, k, st):
        self.calls.append(("status", k, st))

    def on_time(self, u):
        self.calls.append(("time", u))


def down(seq, p, key=KEY, aad=cose.AAD_DOWN):
    return wire.unframe(wire.pack(key, b"bridge", seq, p, aad))


def test_dispatch_each_type():
    d = scratch("dl")
    r = Rec()
    dl = Downlink(KEY, d + "/dl.json", r)
    dl.handle(down(1, {0: M.ACK, 1: 7}))
    dl.handle(down(2, {0: M.CONFIG, 2: 600, 4: 96}))
    dl.handle(down(3, {0: M.CONSENT, 1: 3}))
    dl.handle(down(4, {0: M.ORDER_STATUS, 1: "dev-e1", 2: schema.ST_SHIPPED}))
    dl.handle(down(5, {0: M.TIME, 1: 1700000000}))
    assert r.calls == [("ack", 7), ("config", {0: M.CONFIG, 2: 600, 4: 96}), ("consent", 3),
                       ("status", "dev-e1", schema.ST_SHIPPED), ("time", 1700000000)]
    assert dl.applied == 5 and dl.refused == 0
    rmtree(d)


def test_refuses_bad_mac_uplink_aad_and_uplink_types():
    d = scratch("dl")
    r = Rec()
    dl = Downlink(KEY, d + "/dl.json", r)
    assert dl.handle(down(1, {0: M.CONSENT, 1: 4}, key=bytes(32))) is None
    assert dl.handle(down(2, {0: M.CONSENT, 1: 4}, aad=cose.AAD_UP)) is None   # reflected
    assert dl.handle(down(3, {1: 5, 2: 5, 6: 5})) is None                      # a level
    c = bytearray(down(4, {0: M.CONSENT, 1: 4}))
    c[len(c) // 2] ^= 1
    assert dl.handle(bytes(c)) is None
    assert dl.handle(b"\x01\x02garbage") is None
    assert r.calls == [] and dl.refused == 5 and dl.seq == -1
    rmtree(d)


def test_replay_refused_across_reboot():
    d = scratch("dl")
    r = Rec()
    dl = Downlink(KEY, d + "/dl.json", r)
    f5 = down(5, {0: M.CONSENT, 1: 4})
    assert dl.handle(f5) is not None
    assert dl.handle(f5) is None and dl.replayed == 1
    assert dl.handle(down(4, {0: M.TIME, 1: 1})) is None
    dl2 = Downlink(KEY, d + "/dl.json", r)        # reboot: the seq was persisted
    assert dl2.handle(f5) is None
    dl2.handle(down(6, {0: M.ACK, 1: 1}))        # ack: RAM only until checkpoint
    assert Downlink(KEY, d + "/dl.json").seq == 5
    dl2.checkpoint()
    assert Downlink(KEY, d + "/dl.json").seq == 6
    assert len(r.calls) == 2
    rmtree(d)


def test_weather_makes_the_estimator_a_degree_day_one():
    from firmware.estimator import Estimator
    from firmware import weather
    d = scratch("dl")
    r = Rec()
    r.est = p = Estimator(100)          # a plain estimator: it becomes the degree-day one
    dl = Downlink(KEY, d + "/dl.json", r)
    w = {0: M.WEATHER, 1: 20000, 2: [116, 110, 104], 3: [100, 96]}   # -2, -5, -8 C; normals -10, -12
    assert dl.handle(down(1, w)) == w and isinstance(r.est, weather.Estimator)
    h = r.est
    assert h._s is p._s and h.at(20001) == -5.0 and h.at(20003 + 7) == -12.0
    # a temperature beyond 0..255, more than 16 days, a missing day: refused, not applied
    for bad in ({0: M.WEATHER, 1: 20000, 2: [300]}, {0: M.WEATHER, 1: 20000, 2: [100] * 17},
                {0: M.WEATHER, 2: [100]}, {0: M.WEATHER, 1: 20000, 2: ["a"]}):
        assert dl.handle(down(2, bad)) is None, bad
    assert dl.refused == 4 and r.est is h and h.at(20001) == -5.0
    w2 = {0: M.WEATHER, 1: 20001, 2: [120]}
    assert dl.handle(down(3, w2)) == w2 and r.est is h and h.at(20001) == 0.0
    assert schema.to_named(w) == ("weather", {"day": 20000, "daily": [116, 110, 104],
                                              "normals": [100, 96]})
    rmtree(d)
