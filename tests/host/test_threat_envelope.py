"""Finding 1 of issue 11 (docs/THREAT_MODEL.md T18): a re-encoded copy of a device's frame.

The MAC covers the protected header, the direction and the payload, not the outer
encoding, so the same message has many CBOR encodings with a valid MAC. Before the fix
the bridge parsed envelopes with cbor2 (which takes them all) and told a retransmission
from a replay by the raw bytes: an attacker who saw (or simply beat) the device's frame
for seq N sent a re-encoded copy from its own address; the bridge stored it, acked the
attacker, moved the device's route there (its queued command went to the attacker), and
refused every genuine retransmission of N as a replay: the device's outbox stopped at N.
Now only the canonical envelope (the bytes cose.encode makes) is accepted.
"""
import socket

import cbor2
import pytest

from host_tools import codec
from host_tools import registry as reg
from host_tools.bridge import Bridge, BridgeCore
from host_tools.links import UdpLink
from host_tools.store import Store
from host_tools.uplinks import JsonlUplink
from protocol import cose, framing, messages as M, wire
from protocol.errors import DecodeError
from test_bridge_support import DEV, HELLO, KEY, Replies, decode_down, frame, level, make_registry, wait_for


def _env(seq, payload):
    return framing.decode_frame(wire.unframe(frame(seq, payload)))


def _reframe(body):
    return wire.unframe(framing.encode_frame(body))


def _parts(body):
    arr = cbor2.loads(body).value
    return arr[0], arr[1], arr[2], arr[3]


def _head(major, n, width):
    """A CBOR head with its argument in `width` bytes (0: in the initial byte)."""
    if width == 0:
        return bytes([major << 5 | n])
    return bytes([major << 5 | {1: 24, 2: 25, 4: 26, 8: 27}[width]]) + n.to_bytes(width, "big")


def _bstr(b, width):
    return _head(2, len(b), width) + b


# every one keeps the MAC valid: same protected header, same payload, same tag
REENCODINGS = {
    "self_describe_tag": lambda body: b"\xd9\xd9\xf7" + body,
    "tag17_long_head": lambda body: b"\xd8\x11" + body[1:],
    "array_long_head": lambda body: body[:1] + b"\x98\x04" + body[2:],
    "array_indefinite": lambda body: body[:1] + b"\x9f" + body[2:] + b"\xff",
    "payload_long_head": lambda body: (lambda p, u, pl, t: b"\xd1\x84" + _bstr(p, 0) + cbor2.dumps(u)
                                       + _bstr(pl, 2) + _bstr(t, 0))(*_parts(body)),
    "kid_long_head": lambda body: (lambda p, u, pl, t: b"\xd1\x84" + _bstr(p, 0) + b"\xa1\x04"
                                   + _bstr(u[4], 1) + _bstr(pl, 0) + _bstr(t, 0))(*_parts(body)),
    "tag_long_head": lambda body: (lambda p, u, pl, t: b"\xd1\x84" + _bstr(p, 0) + cbor2.dumps(u)
                                   + _bstr(pl, 0) + _bstr(t, 1))(*_parts(body)),
    "unprotected_map_long_key": lambda body: (lambda p, u, pl, t: b"\xd1\x84" + _bstr(p, 0) + b"\xa1\x18\x04"
                                              + _bstr(u[4], 0) + _bstr(pl, 0) + _bstr(t, 0))(*_parts(body)),
    "unprotected_map_indefinite": lambda body: (lambda p, u, pl, t: b"\xd1\x84" + _bstr(p, 0) + b"\xbf\x04"
                                                + _bstr(u[4], 0) + b"\xff" + _bstr(pl, 0) + _bstr(t, 0))(*_parts(body)),
    "trailing_byte": lambda body: body + b"\x00",
}


@pytest.mark.parametrize("name", sorted(REENCODINGS))
def test_reencoded_copy_is_refused_and_the_genuine_frame_still_stored(tmp_path, name):
    store = Store(tmp_path / "b.sqlite")
    core = BridgeCore(store, reg.Registry(make_registry(tmp_path)), ["jsonl:/dev/null"])
    try:
        dev_r, att_r = Replies(), Replies()
        assert core.handle_chunk(wire.unframe(frame(0, HELLO)), dev_r, "udp:10.0.0.7:4210") == "stored"
        body = _env(1, level(480))
        copy = REENCODINGS[name](body)
        assert copy != body
        # the copy still verifies for a permissive decoder: the attack needs no key
        arr = cbor2.loads(copy)
        arr = arr.value if isinstance(arr, cbor2.CBORTag) and arr.tag == 55799 else arr
        p, u, pl, t = (arr.value if isinstance(arr, cbor2.CBORTag) else arr)
        assert cose.hmac_sha256(KEY, cose.mac_input(p, pl, b"u"))[:8] == t
        dev_r.clear()
        core.queue_command(DEV, "config", {"report_s": 60})     # goes to the device at once
        assert core.handle_chunk(_reframe(copy), att_r, "udp:6.6.6.6:1") == "malformed"
        assert att_r == []                                   # no ack, no command to the attacker
        assert core.routes[DEV][0] == "udp:10.0.0.7:4210"
        # the device's own frame (or its retransmission) is stored and acked at its address
        assert core.handle_chunk(wire.unframe(frame(1, level(480))), dev_r, "udp:10.0.0.7:4210") == "stored"
        assert [pl for _, _, pl in dev_r.decoded()] == [{0: M.CONFIG, 2: 60}, {0: M.ACK, 1: 1}]
        assert core.handle_chunk(wire.unframe(frame(1, level(480))), dev_r, "udp:10.0.0.7:4210") == "duplicates"
    finally:
        store.close()


def test_reencoded_copy_over_udp_does_not_wedge_the_device(tmp_path):
    """The attack as found: over 127.0.0.1, the device's datagram for seq 1 is lost, the
    attacker sends a self-describe-tagged copy from its own socket first."""
    regpath = make_registry(tmp_path)
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(regpath), [JsonlUplink(str(tmp_path / "up.jsonl"))],
               [UdpLink("udp://127.0.0.1:0")], log=lambda e, **kw: None)
    b.start()
    device = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (device, attacker):
        s.bind(("127.0.0.1", 0))
        s.settimeout(2.0)
    try:
        addr = b.links[0].address
        device.sendto(frame(0, HELLO), addr)
        assert decode_down(device.recvfrom(512)[0])[2] == {0: M.ACK, 1: 0}
        attacker.sendto(framing.encode_frame(b"\xd9\xd9\xf7" + _env(1, level(480))), addr)
        assert wait_for(lambda: b.count["malformed"] == 1)
        device.sendto(frame(1, level(480)), addr)          # the device retransmits seq 1
        assert decode_down(device.recvfrom(512)[0])[2] == {0: M.ACK, 1: 1}
        assert b.count["replay"] == 0 and b.count["stored"] == 2
        attacker.settimeout(0.3)
        with pytest.raises(socket.timeout):
            attacker.recvfrom(512)
    finally:
        device.close()
        attacker.close()
        b.stop()


def test_canonical_envelope_and_payload_accepted_byte_for_byte():
    body = _env(77, level(480))
    kid, seq, prot, payload, tag = codec.parse_envelope(body)
    assert (kid, seq) == (DEV.encode(), 77)
    assert cose.encode(KEY, kid, seq, payload) == body      # the one accepted form


def test_duplicate_map_keys_in_a_signed_payload_are_refused():
    """Finding 6: {1: 500, 1: 5} (signed with the device key) was stored as 5."""
    raw = b"\xa4\x01\x19\x01\xf4\x01\x05\x02\x32\x06\x08"     # {1: 500, 1: 5, 2: 50, 6: 8}
    assert cbor2.loads(raw)[1] == 5                          # what cbor2 alone makes of it
    body = cose.encode(KEY, DEV, 5, raw)
    with pytest.raises(DecodeError, match="order|duplicat"):
        codec.decode_body(body, lambda kid: KEY)


@pytest.mark.parametrize("raw", [
    b"\xd9\xd9\xf7\xa2\x01\x05\x02\x32",          # a tag in front
    b"\xbf\x01\x05\x02\x32\xff",                  # indefinite map
    b"\xa2\x01\x18\x05\x02\x32",                  # 5 in a long head
    b"\xa2\x02\x32\x01\x05",                      # keys out of order
    b"\xa2\x01\xf9\x3c\x00\x02\x32",              # a float
    b"\xa1\x01" + b"\x81" * 6 + b"\x00",          # too deep
], ids=["tag", "indefinite", "long_head", "key_order", "float", "depth"])
def test_non_deterministic_payloads_refused_before_cbor2(raw):
    with pytest.raises(DecodeError):
        codec.check_payload(raw)
