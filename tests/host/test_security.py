"""Security: hostile frames against the real bridge (in process and over UDP), and keys
that never reach a log, a status file or the monitor.

Every attack is rejected, counted under its own counter (never `stored`), never acked and
never forwarded: after each attack a legitimate sentinel frame is sent, and once the
sentinel is in the jsonl uplink the file must hold exactly the legitimate messages.

Counter names (host_tools/bridge.py COUNTERS):
  bad_mac         forged tag, altered payload, wrong key, a neighbour's kid, a reflected
                  downlink (AAD "d"): the MAC does not verify with the registry key
  unknown_device  a kid that is not in the registry
  replay          an old seq with different (validly signed) bytes
  duplicates      the exact old frame again: re-acked (the first ack may be lost), not stored
  malformed       envelopes not in the pinned form: truncated tag, alg 5 / alg 0 / no alg /
                  alg "HS256" / alg 4.0 (even with an HMAC that is valid for that header),
                  downlink types sent uplink
"""
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cbor2
import pytest

from host_tools import registry as reg
from host_tools.bridge import Bridge
from host_tools.links import UdpLink
from host_tools.uplinks import JsonlUplink
from protocol import cose, framing, messages as M, wire
from test_bridge_support import DEV, KEY, KEY2, decode_down, frame, level, wait_for
from netutil import free_port  # noqa: E402 (tests/ is on sys.path)

ROOT = Path(__file__).resolve().parents[2]
NEIGHBOUR = "dev2"           # a second, legitimate device with its own key (KEY2)


# ------------------------------------------------------------------ frame builders
def reframe(body: bytes) -> bytes:
    """Envelope -> chunk with a correct COBS + CRC, so only the COSE layer can object."""
    return wire.unframe(framing.encode_frame(body))


def body_of(fr: bytes) -> bytes:
    return framing.decode_frame(wire.unframe(fr))


def mac(key, prot, payload, aad=cose.AAD_UP, n=cose.TAG_LEN):
    return hmac.new(key, cbor2.dumps(["MAC0", prot, aad, payload]), hashlib.sha256).digest()[:n]


def envelope(prot: bytes, payload: bytes, tag: bytes, kid=DEV) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(cose.TAG_MAC0, [prot, {4: kid.encode()}, payload, tag]))


def payload_bytes(p=None):
    return cbor2.dumps(p if p is not None else level(), canonical=True)


def forged_tag(seq):
    """A valid frame with one bit of its tag flipped (CRC recomputed)."""
    kid, s, prot, payload, tag = cose.parse(body_of(frame(seq, level(111))))
    return reframe(envelope(prot, payload, bytes([tag[0] ^ 1]) + tag[1:]))


def altered_payload(seq):
    """The tag of one message on another payload (e.g. an attacker raising an order)."""
    kid, s, prot, payload, tag = cose.parse(body_of(frame(seq, level(111))))
    return reframe(envelope(prot, payload_bytes(level(999)), tag))


def wrong_key(seq):
    return wire.unframe(frame(seq, level(222), key=KEY2))


def neighbour_kid(seq):
    """dev2 (a real, registered device) signs with its own key but claims to be dev1."""
    return wire.unframe(frame(seq, level(223), dev=DEV, key=KEY2))


def unknown_device(seq):
    return wire.unframe(frame(seq, level(224), dev="mallory", key=KEY))


def reflected_downlink(seq):
    """A frame MACed with the downlink AAD (what the bridge sends) played back uplink."""
    return wire.unframe(wire.pack(KEY, DEV, seq, level(225), cose.AAD_DOWN))


def truncated_tag(seq):
    """A correct HMAC 256/64 cut to 4 bytes (a 2^32 forgery would be within reach)."""
    prot = cose.protected_header(seq)
    p = payload_bytes(level(226))
    return reframe(envelope(prot, p, mac(KEY, prot, p, n=4)))


def downgrade(alg, n=cose.TAG_LEN):
    def build(seq):
        hdr = {6: cose.piv_bytes(seq)}
        if alg is not None:
            hdr[1] = alg
        prot = cbor2.dumps(hdr, canonical=True)
        p = payload_bytes(level(227))
        return reframe(envelope(prot, p, mac(KEY, prot, p, n=n)))  # valid HMAC for this header
    return build


def downlink_type_uplink(seq):
    """A validly signed uplink envelope carrying a downlink type (a consent change)."""
    return wire.unframe(wire.pack(KEY, DEV, seq, {0: M.CONSENT, 1: 4}))


ATTACKS = [
    ("forged_tag", forged_tag, "bad_mac"),
    ("altered_payload", altered_payload, "bad_mac"),
    ("wrong_key", wrong_key, "bad_mac"),
    ("neighbour_kid", neighbour_kid, "bad_mac"),
    ("reflected_downlink", reflected_downlink, "bad_mac"),
    ("unknown_device", unknown_device, "unknown_device"),
    ("truncated_tag_4", truncated_tag, "malformed"),
    ("alg5_full_tag", downgrade(5, 32), "malformed"),      # HMAC 256/256, 32-byte tag
    ("alg5_short_tag", downgrade(5), "malformed"),
    ("alg0", downgrade(0), "malformed"),
    ("alg_absent", downgrade(None), "malformed"),
    ("alg_text", downgrade("HS256"), "malformed"),
    ("alg_float_4", downgrade(4.0), "malformed"),           # 4.0 == 4 in Python: type is pinned too
    ("downlink_type_uplink", downlink_type_uplink, "malformed"),
]


# ------------------------------------------------------------------ fixtures
def jsonl_lines(path):
    if not os.path.exists(path):
        return []
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def make_reg(tmp_path):
    path = tmp_path / "registry.json"
    reg.add_device(path, DEV, KEY.hex(), board="virtual")
    reg.add_device(path, NEIGHBOUR, KEY2.hex(), board="virtual")
    return path


@pytest.fixture
def bridge(tmp_path):
    logs = []
    out = tmp_path / "up.jsonl"
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(make_reg(tmp_path)), [JsonlUplink(str(out))],
               [UdpLink("udp://127.0.0.1:0")], log=lambda e, **kw: logs.append(dict(kw, event=e)),
               backoff=0.05).start()
    b.out, b.logs = out, logs
    try:
        yield b
    finally:
        b.stop()


class Replies(list):
    def __call__(self, fr):
        self.append(bytes(fr))


def counters_delta(before, after):
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


# ------------------------------------------------------------------ in process
@pytest.mark.parametrize("name, build, counter", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_rejected_counted_never_forwarded(bridge, name, build, counter):
    core, r = bridge.core, Replies()
    assert core.handle_chunk(wire.unframe(frame(1, level(500))), r, "test") == "stored"
    assert wait_for(lambda: bridge.count["forwarded"] == 1)   # the forwarder is idle again
    before = bridge.count.snapshot()
    # the attack frame, with the next seq (fresh) and with a seq far ahead
    for seq in (2, 1000):
        assert core.handle_chunk(build(seq), r, "test") == counter
    d = counters_delta(before, bridge.count.snapshot())
    assert d == {"frames": 2, counter: 2}, d          # its own counter, nothing stored or acked
    assert len(r) == 1                                # only the legitimate frame was acked
    # the device's real seq 2 is still accepted: an attack cannot burn sequence numbers
    assert core.handle_chunk(wire.unframe(frame(2, level(490))), r, "test") == "stored"
    assert wait_for(lambda: len(jsonl_lines(bridge.out)) == 2)
    time.sleep(0.1)
    lines = jsonl_lines(bridge.out)
    assert [(x["device"], x["seq"], x["remaining"]) for x in lines] == [(DEV, 1, 500), (DEV, 2, 490)]
    assert bridge.store.queued() == 0 and bridge.count["forwarded"] == 2
    logged = [e for e in bridge.logs if e["event"] == counter]
    assert len(logged) == 2


def test_replay_and_retransmission(bridge):
    core, r = bridge.core, Replies()
    f1, f2 = frame(1, level(500)), frame(2, level(480))
    assert core.handle_chunk(wire.unframe(f1), r, "test") == "stored"
    assert core.handle_chunk(wire.unframe(f2), r, "test") == "stored"
    assert wait_for(lambda: bridge.count["forwarded"] == 2)
    before = bridge.count.snapshot()
    # an old seq with different bytes (validly signed: a replayed-then-edited or buggy device)
    assert core.handle_chunk(wire.unframe(frame(1, level(10))), r, "test") == "replay"
    assert core.handle_chunk(wire.unframe(frame(2, {0: M.EVENT, 1: M.EV_ORDER_REQUEST, 2: 1, 3: "dev1-b9", 5: 0})),
                             r, "test") == "replay"
    assert len(r) == 2
    # the exact old frame after it was acked: re-acked (the ack may have been lost) ...
    assert core.handle_chunk(wire.unframe(f1), r, "test") == "duplicates"
    assert len(r) == 3 and decode_down(r[-1])[2] == {0: M.ACK, 1: 1}
    assert decode_down(r[-1])[1] > decode_down(r[1])[1]   # with a fresh downlink seq
    d = counters_delta(before, bridge.count.snapshot())
    assert d == {"frames": 3, "replay": 2, "duplicates": 1, "acks": 1}, d
    # ... and never forwarded twice
    assert core.handle_chunk(wire.unframe(frame(3, level(470))), r, "test") == "stored"
    assert wait_for(lambda: len(jsonl_lines(bridge.out)) == 3)
    time.sleep(0.1)
    assert [(x["seq"], x["remaining"]) for x in jsonl_lines(bridge.out)] == [(1, 500), (2, 480), (3, 470)]
    assert bridge.count["forwarded"] == 3


def test_replay_of_old_frame_after_restart_not_forwarded_twice(tmp_path):
    """Dedupe lives in SQLite, not only in RAM: a restart does not reopen the window."""
    regpath, out = make_reg(tmp_path), tmp_path / "up.jsonl"
    f1 = frame(1, level(500))
    for round_ in range(2):
        b = Bridge(tmp_path / "b.sqlite", reg.Registry(regpath), [JsonlUplink(str(out))], [],
                   log=lambda e, **kw: None).start()
        try:
            r = Replies()
            assert b.core.handle_chunk(wire.unframe(f1), r, "t") == ("stored" if round_ == 0 else "duplicates")
            assert b.core.handle_chunk(wire.unframe(frame(1, level(5))), r, "t") == "replay"
            assert len(r) == 1
            assert wait_for(lambda: b.store.queued() == 0 and len(jsonl_lines(out)) == 1)
        finally:
            b.stop()
    assert len(jsonl_lines(out)) == 1


# ------------------------------------------------------------------ over a real UDP socket
def test_attacks_over_udp_loopback(bridge):
    addr = bridge.links[0].address
    assert addr[0] == "127.0.0.1"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(frame(1, level(500)), addr)
        assert decode_down(s.recvfrom(512)[0])[2] == {0: M.ACK, 1: 1}
        assert wait_for(lambda: bridge.count["forwarded"] == 1)
        before = bridge.count.snapshot()
        want = {}
        for _, build, counter in ATTACKS:
            s.sendto(b"\x00" + build(2) + b"\x00", addr)
            want[counter] = want.get(counter, 0) + 1
        s.sendto(frame(1, level(7)), addr)                 # replay: old seq, other bytes
        want["replay"] = 1
        s.sendto(frame(2, level(490)), addr)               # the sentinel, then its retransmission
        s.sendto(frame(2, level(490)), addr)
        acks = []
        s.settimeout(5)                                    # generous: an fsync can stall
        for _ in range(2):
            acks.append(decode_down(s.recvfrom(512)[0])[2])
        n = len(ATTACKS) + 3
        assert wait_for(lambda: bridge.count["frames"] - before["frames"] == n, timeout=10)
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):                # nothing else was answered
            s.recvfrom(512)
        # the sentinel is acked twice (stored, then duplicate); no attack got an ack
        assert acks == [{0: M.ACK, 1: 2}, {0: M.ACK, 1: 2}]
        d = counters_delta(before, bridge.count.snapshot())
        d.pop("forwarded", None)
        assert d == dict(want, frames=n, stored=1, duplicates=1, acks=2), d
        assert wait_for(lambda: len(jsonl_lines(bridge.out)) == 2)
        time.sleep(0.2)
        assert [(x["seq"], x["remaining"]) for x in jsonl_lines(bridge.out)] == [(1, 500), (2, 490)]
    finally:
        s.close()


# ------------------------------------------------------------------ keys never printed
SECRET = bytes.fromhex("5ec7e75ec7e7a11ce0b0b0c0ffee0ddba11c0de5ca1ab1e0defacedf00dcafe5")


def secret_forms(key):
    return [key.hex(), key.hex().upper(), base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode(),
            base64.b64encode(key).decode().rstrip("="), repr(key)[2:-1]]


def assert_no_key(text, key, where):
    if isinstance(text, bytes):
        assert key not in text, "raw key bytes in %s" % where
        text = text.decode("latin-1")
    for form in secret_forms(key):
        assert form not in text, "key (%s...) in %s" % (form[:6], where)
    # a key split across a line is still a leak: look at the longest hex run too
    assert key.hex()[:16] not in text.lower(), "key prefix in %s" % where


def _bridge_cmd(port, regpath, db, out):
    return [sys.executable, "-c", "import sys; from host_tools.bridge import main_bridge; "
            "sys.exit(main_bridge(sys.argv[1:]))", "--listen", "udp://127.0.0.1:%d" % port,
            "--uplink", "jsonl:%s" % out, "--registry", str(regpath), "--db", str(db), "--print-every", "0.5"]


def test_keys_never_in_output_status_or_monitor(tmp_path):
    regpath, db, out = tmp_path / "registry.json", tmp_path / "b.sqlite", tmp_path / "up.jsonl"
    reg.add_device(regpath, "sec1", SECRET.hex(), board="virtual", port="/dev/ttyUSB0")
    reg.add_device(regpath, "sec2", KEY2.hex(), board="virtual")
    port = free_port(socket.SOCK_DGRAM)
    p = subprocess.Popen(_bridge_cmd(port, regpath, db, out), cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        ok = False
        for _ in range(50):  # until the bridge listens
            s.sendto(wire.pack(SECRET, "sec1", 1, level(500)), ("127.0.0.1", port))
            try:
                s.recvfrom(512)
                ok = True
                break
            except socket.timeout:
                continue
        assert ok, "bridge did not answer"
        good = [wire.pack(SECRET, "sec1", n, level(500 - n)) for n in (2, 3)]
        bad = [wire.pack(KEY, "sec1", 4, level(1)),                 # wrong key
               wire.pack(SECRET, "nobody", 1, level(1)),            # unknown device
               wire.pack(SECRET, "sec1", 1, level(2)),              # replay
               wire.pack(SECRET, "sec1", 5, level(3), cose.AAD_DOWN),
               b"\x00" + downgrade(5, 32)(6) + b"\x00",
               b"\x00" + truncated_tag(7) + b"\x00",
               b"\x00\x01\x02garbage\x00", SECRET.hex().encode()]  # even the key itself as noise
        for f in good + bad:
            s.sendto(f, ("127.0.0.1", port))
        assert wait_for(lambda: len(jsonl_lines(out)) == 3, timeout=10)
        # exception paths while running: a corrupt entry, then a torn registry file
        doc = reg.load(regpath)
        doc["devices"]["sec2"]["key"] = "zz" + SECRET.hex()[2:]          # not hex
        doc["devices"]["sec3"] = {"key": [SECRET.hex()]}                 # not a string
        reg.save(regpath, doc)
        s.sendto(wire.pack(SECRET, "sec1", 8, level(400)), ("127.0.0.1", port))
        assert wait_for(lambda: len(jsonl_lines(out)) == 4, timeout=10)
        regpath.write_text(json.dumps(doc)[:-40])                        # torn JSON holding the key
        s.sendto(wire.pack(SECRET, "sec1", 9, level(399)), ("127.0.0.1", port))
        assert wait_for(lambda: len(jsonl_lines(out)) == 5, timeout=10)  # old keys kept
        time.sleep(1.2)  # a status write and a counters line
    finally:
        s.close()
        p.send_signal(signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=15)
    assert p.returncode == 0
    events = [json.loads(x)["event"] for x in stderr.decode().splitlines() if x.startswith(b"{"[0:1].decode())]
    for ev in ("frame", "bad_mac", "unknown_device", "replay", "malformed", "noise", "registry_bad_entry",
               "registry_error", "counters", "bridge_stopped"):
        assert ev in events, ev
    assert_no_key(stdout, SECRET, "bridge stdout")
    assert_no_key(stderr, SECRET, "bridge stderr")
    status = Path(str(db) + ".status.json")
    assert status.exists()
    assert_no_key(status.read_bytes(), SECRET, "status file")
    assert_no_key(out.read_bytes(), SECRET, "jsonl uplink")
    for f in tmp_path.iterdir():   # the database (and WAL) hold envelopes, never keys
        if f.name.startswith("b.sqlite") and not f.name.endswith(".json"):
            assert_no_key(f.read_bytes(), SECRET, f.name)
    if (ROOT / "host_tools" / "monitor.py").exists():
        mon = subprocess.run([sys.executable, "-c", "import sys; from host_tools.monitor import main_monitor; "
                              "sys.exit(main_monitor(sys.argv[1:]))", "--once", "--db", str(db)],
                             cwd=ROOT, capture_output=True, timeout=30)
        assert mon.returncode == 0, mon.stderr
        assert b"sec1" in mon.stdout
        assert_no_key(mon.stdout + mon.stderr, SECRET, "monitor output")


@pytest.mark.parametrize("content", [
    lambda k: '{"devices": {"sec1": {"key": "%s"' % k.hex(),                    # torn JSON
    lambda k: '{"devices": ["%s"]}' % k.hex(),                                  # wrong shape
    lambda k: '{"devices": {"sec1": {"key": "%s"}}} trailing' % k.hex(),
], ids=["torn", "shape", "trailing"])
def test_corrupt_registry_at_startup_does_not_print_key(tmp_path, content):
    regpath = tmp_path / "registry.json"
    regpath.write_text(content(SECRET))
    p = subprocess.run(_bridge_cmd(free_port(socket.SOCK_DGRAM), regpath, tmp_path / "b.sqlite", tmp_path / "o.jsonl"),
                       cwd=ROOT, capture_output=True, timeout=30)
    assert p.returncode == 2
    assert b"registry" in p.stderr and b"Traceback" not in p.stderr
    assert_no_key(p.stdout + p.stderr, SECRET, "startup error")


def test_registry_repr_and_masked_view_hide_keys(tmp_path):
    regpath = tmp_path / "registry.json"
    reg.add_device(regpath, "sec1", SECRET.hex())
    r = reg.Registry(regpath)
    assert_no_key(repr(r) + str(r) + json.dumps(reg.masked(reg.load(regpath))), SECRET, "repr/masked")
    assert os.stat(regpath).st_mode & 0o777 == 0o600
