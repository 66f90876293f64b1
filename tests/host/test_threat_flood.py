"""Findings 2 and 3 of issue 11 (docs/THREAT_MODEL.md T21, T22): work and output per input.

2. cbor2 decoded special tags (bigfloats, regular expressions, ...) of every datagram
   before anything was verified: a few hundred bytes cost milliseconds of CPU each, and a
   flood of them delayed a good device's acks by seconds. Now the envelope is parsed byte
   by byte (no CBOR library before the MAC), and each sender IP has a budget of rejected
   datagrams (`source_limited` beyond it).
3. The bridge split a datagram on 0x00 and logged one line per rejected chunk: a 4 KB
   datagram wrote ~170 KB of log. Now a datagram is one frame, and rejected input is
   logged by sample with one summary line per period.
Over 127.0.0.1 and in process; bounded in count and time.
"""
import io
import json
import socket
import threading
import time

import cbor2
import pytest

from host_tools import codec
from host_tools import registry as reg
from host_tools.bridge import Bridge, BridgeCore, JsonLog
try:
    from host_tools.bridge import SampledLog
except ImportError:  # before the fix
    SampledLog = None
from host_tools.links import UdpLink
from host_tools.store import Store
from host_tools.uplinks import JsonlUplink
from protocol import framing, messages as M, wire
from test_bridge_support import DEV, HELLO, Replies, decode_down, frame, level, make_registry, wait_for


def costly(i=0, kid=DEV.encode()):
    """A COSE_Mac0-shaped envelope whose unprotected header holds a regular expression
    (tag 35) with wide character classes, different for each i (the re module caches
    compiled patterns): a decoder that honours the tag compiles it, ~40 ms of CPU for
    about 270 bytes on the wire."""
    env = cbor2.dumps(cbor2.CBORTag(17, [b"\xa2\x01\x04\x06A\x01", {
        4: kid, 5: cbor2.CBORTag(35, "[a-z\u0100-\uffff]{1,9999}x" * 12 + str(i))}, b"\xa0", b"12345678"]))
    return framing.encode_frame(env)


HOSTILE = {
    "regex_tag_wide": costly(),
    "bigfloats": framing.encode_frame(cbor2.dumps(cbor2.CBORTag(17, [b"", {4: b"dev1", 5: [
        cbor2.CBORTag(5, [10 ** 6 + j, 3]) for j in range(40)]}, b"", b""]))),
    "regex_tag": framing.encode_frame(cbor2.dumps(cbor2.CBORTag(17, [b"", {4: cbor2.CBORTag(35, "(a+)+$" * 30)},
                                                                     b"", b""]))),
    "deep_arrays": framing.encode_frame(b"\xd1" + b"\x81" * 500),
    "indefinite": framing.encode_frame(b"\xd1\x9f" + b"\x5f" * 200),
    "bignum_kid": framing.encode_frame(cbor2.dumps(cbor2.CBORTag(17, [b"\xa2\x01\x04\x06A\x01",
                                                                      {4: cbor2.CBORTag(2, b"\xff" * 300)},
                                                                      b"\xa0", b"12345678"]))),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_no_cbor_library_runs_before_the_mac(tmp_path, monkeypatch, name):
    store = Store(tmp_path / "b.sqlite")
    core = BridgeCore(store, reg.Registry(make_registry(tmp_path)), ["jsonl:/dev/null"])
    calls = []
    real = cbor2.loads
    monkeypatch.setattr(codec.cbor2, "loads", lambda *a, **k: calls.append(1) or real(*a, **k))
    try:
        assert core.handle_chunk(wire.unframe(HOSTILE[name]), Replies(), "udp:6.6.6.6:1") == "malformed"
        assert calls == []
        # a verified frame's payload is the only thing cbor2 decodes
        assert core.handle_chunk(wire.unframe(frame(0, HELLO)), Replies(), "udp:10.0.0.7:4210") == "stored"
        assert calls == [1]
    finally:
        store.close()


def test_one_noisy_address_cannot_starve_another(tmp_path):
    t = [1000.0]
    store = Store(tmp_path / "b.sqlite")
    core = BridgeCore(store, reg.Registry(make_registry(tmp_path)), ["jsonl:/dev/null"])
    core.sources.clock = lambda: t[0]
    try:
        outs = [core.handle_chunk(b"junk%d" % i, Replies(), "udp:6.6.6.6:1000") for i in range(200)]
        assert outs.count("noise") == 50 and outs.count("source_limited") == 150
        r = Replies()
        assert core.handle_chunk(wire.unframe(frame(0, HELLO)), r, "udp:10.0.0.7:4210") == "stored"
        assert [p for _, _, p in r.decoded()] == [{0: M.ACK, 1: 0}]
        t[0] += 1.0                              # 20 tokens a second come back
        outs = [core.handle_chunk(b"junk", Replies(), "udp:6.6.6.6:1000") for _ in range(25)]
        assert outs.count("noise") == 20
        # serial has no budget: the board's own REPL text must never block its frames
        for _ in range(200):
            core.handle_chunk(b"[agent] queued 1 type 2", Replies(), "serial:/dev/ttyUSB0")
        assert core.handle_chunk(wire.unframe(frame(1)), r, "serial:/dev/ttyUSB0") == "stored"
    finally:
        store.close()


def _udp(timeout=3.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(timeout)
    return s


@pytest.fixture
def udp_bridge(tmp_path):
    logbuf = io.StringIO()
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(make_registry(tmp_path)), [JsonlUplink(str(tmp_path / "up.jsonl"))],
               [UdpLink("udp://127.0.0.1:0")], log=JsonLog(logbuf), print_every=0)
    b.logbuf = logbuf
    b.start()
    yield b
    b.stop()


def test_a_good_device_is_acked_in_time_during_a_flood_of_costly_datagrams(udp_bridge):
    """~400 costly datagrams a second for as long as the device talks (before the fix each
    cost ~40 ms of cbor2 work: the bridge fell further behind every second). The device
    resends after 1 s, at most 3 times, as a real one would (after 4 s, doubling)."""
    b = udp_bridge
    addr = b.links[0].address
    device, attacker = _udp(1.0), _udp()
    flood = [costly(i) for i in range(400)]
    stop = threading.Event()
    try:
        device.sendto(frame(0, HELLO), addr)
        assert decode_down(device.recvfrom(512)[0])[2] == {0: M.ACK, 1: 0}

        def attack():
            i = 0
            while not stop.is_set() and i < 20000:
                attacker.sendto(flood[i % len(flood)], addr)
                i += 1
                time.sleep(0.0025)

        th = threading.Thread(target=attack)
        th.start()
        time.sleep(0.5)
        acked = 0
        for seq in range(1, 11):
            for _ in range(3):
                device.sendto(frame(seq, level(900 - seq)), addr)
                try:
                    while decode_down(device.recvfrom(512)[0])[2] != {0: M.ACK, 1: seq}:
                        pass
                    acked += 1
                    break
                except socket.timeout:
                    continue
        stop.set()
        th.join(10)
        assert acked == 10
        assert b.count["malformed"] >= 1 and b.count["source_limited"] >= 1
    finally:
        stop.set()
        device.close()
        attacker.close()


def test_one_frame_per_datagram_and_a_bounded_log(udp_bridge):
    b = udp_bridge
    addr = b.links[0].address
    s = _udp()
    try:
        junk = (b"\x00" + b"x" * 19) * 205           # a 4 KB datagram: 205 zero-separated chunks
        before = b.count["frames"]
        s.sendto(junk, addr)
        assert wait_for(lambda: b.count["frames"] > before)
        time.sleep(0.2)
        assert b.count["frames"] - before == 1       # one datagram, one chunk
        sent = len(junk)
        for i in range(300):                         # 300 more junk datagrams of 100 bytes
            s.sendto(b"\x00" + bytes([1 + i % 250]) * 100 + b"\x00", addr)
            sent += 102
            time.sleep(0.001)                        # within the socket buffer: none dropped
        assert wait_for(lambda: b.count["frames"] - before == 301)
        log = b.logbuf.getvalue()
        lines = [json.loads(x) for x in log.splitlines()]
        rejected = [x for x in lines if x["event"] in ("noise", "bad_crc", "source_limited", "rejected")]
        print("\n%d bytes of junk sent, %d bytes of log, %d lines about it" % (sent, len(log), len(rejected)))
        assert len(rejected) <= 12                   # 3 samples of each kind (+ summaries)
        assert len(log) < sent // 10
        assert sum(b.count[k] for k in ("noise", "bad_crc", "source_limited")) == 301   # all still counted
    finally:
        s.close()


def test_sampled_log_sums_up_what_it_left_out():
    t, out = [0.0], []
    log = SampledLog(lambda e, **kw: out.append(dict(kw, event=e)), every=10.0, samples=2, clock=lambda: t[0])
    for _ in range(100):
        log("noise", size=5)
    log("bad_mac", device="dev1")
    assert [e["event"] for e in out] == ["noise", "noise", "bad_mac"]
    t[0] = 10.5
    log.flush()
    assert out[-1] == {"event": "rejected", "period_s": 10.5, "left_out": 98, "noise": 100, "bad_mac": 1}
    log("noise", size=5)                             # a new period: samples again
    assert out[-1]["event"] == "noise"
