"""Interop: our codec vs cbor2, and our COSE_Mac0 (made on MicroPython) vs pycose."""
import json
import sys
from pathlib import Path

import cbor2
import pytest
from pycose.algorithms import HMAC25664
from pycose.headers import KID, Algorithm, PartialIV
from pycose.keys import SymmetricKey
from pycose.messages import CoseMessage, Mac0Message

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mputil import ROOT, run_mp  # noqa: E402

from host_tools import codec  # noqa: E402
from protocol import cose, messages, schema  # noqa: E402
from protocol.errors import AuthError, DecodeError, FrameError, ProtocolError  # noqa: E402

VEC = json.loads((ROOT / "protocol/vectors/vectors.json").read_text())
KEY = bytes.fromhex(VEC["key_hex"])


def test_vectors_file_is_current():
    from protocol.vectors import make_vectors
    assert make_vectors.build() == VEC, "run: python -m protocol.vectors.make_vectors"


@pytest.mark.parametrize("vec", VEC["vectors"], ids=lambda v: v["name"])
def test_cbor2_agrees_with_vectors(vec):
    raw = bytes.fromhex(vec["payload_hex"])
    obj = cbor2.loads(raw)
    assert cbor2.dumps(obj, canonical=True) == raw
    env = bytes.fromhex(vec["envelope_hex"])
    assert cbor2.dumps(cbor2.loads(env), canonical=True) == env


@pytest.mark.parametrize("vec", [v for v in VEC["vectors"] if v["direction"] == "up"], ids=lambda v: v["name"])
def test_host_codec_decodes_vectors(vec):
    chunk = bytes.fromhex(vec["frame_hex"]).strip(b"\x00")
    msg = codec.decode_chunk(chunk, lambda kid: KEY)
    assert msg.device == VEC["kid"] and msg.seq == vec["seq"]
    name, named = schema.to_named(cbor2.loads(bytes.fromhex(vec["payload_hex"])))
    assert msg.type == name and msg.fields() == named


def test_host_downlink_matches_device_encoder():
    for vec in VEC["vectors"]:
        if vec["direction"] == "down":
            payload = cbor2.loads(bytes.fromhex(vec["payload_hex"]))
            assert codec.encode_downlink(KEY, VEC["kid"], vec["seq"], payload).hex() == vec["frame_hex"]


def test_micropython_mac0_verifies_with_pycose():
    out = run_mp("""
from protocol import cose, cbor
key = bytes(range(32))
print(cose.encode(key, 'dev-7', 4242, cbor.dumps({1: 77, 2: 7, 6: 10}), b'u').hex())
""", heap="128K")  # compiling the .py sources needs more room than running them
    data = bytes.fromhex(out.strip())
    msg = CoseMessage.decode(data)
    assert isinstance(msg, Mac0Message)
    msg.key = SymmetricKey(k=bytes(range(32)))
    msg.external_aad = b"u"
    assert msg.verify_tag()
    assert msg.phdr[Algorithm] is HMAC25664 or msg.phdr[Algorithm] == HMAC25664
    assert msg.phdr[PartialIV] == (4242).to_bytes(2, "big")
    assert msg.uhdr[KID] == b"dev-7"
    assert cbor2.loads(msg.payload) == {1: 77, 2: 7, 6: 10}
    # and a tampered copy does not verify with pycose either
    bad = CoseMessage.decode(data[:-1] + bytes([data[-1] ^ 0x80]))
    bad.key = SymmetricKey(k=bytes(range(32)))
    bad.external_aad = b"u"
    assert not bad.verify_tag()


def test_pycose_mac0_verifies_on_micropython():
    msg = Mac0Message(phdr={Algorithm: HMAC25664, PartialIV: (513).to_bytes(2, "big")},
                      uhdr={KID: b"dev-9"}, payload=cbor2.dumps({0: 18, 1: 2}), external_aad=b"d")
    msg.key = SymmetricKey(k=bytes(range(32)))
    data = msg.encode(tag=True)
    out = run_mp("""
from protocol import cose, cbor
from protocol.errors import AuthError
key = bytes(range(32))
data = bytes.fromhex('%s')
kid, seq, payload = cose.verify(data, lambda k: key, b'd')
print(kid.decode(), seq, cbor.loads(payload))
try:
    cose.verify(data, lambda k: bytes(32), b'd')
    print('FORGED-ACCEPTED')
except AuthError:
    print('wrong-key-rejected')
""" % data.hex(), heap="128K")
    assert out.split("\n")[0] == "dev-9 513 {0: 18, 1: 2}" or out.split("\n")[0] == "dev-9 513 {1: 2, 0: 18}"
    assert "wrong-key-rejected" in out


def test_host_rejects_hostile_envelopes():
    good = bytes.fromhex(VEC["vectors"][1]["frame_hex"]).strip(b"\x00")
    key_for = lambda kid: KEY  # noqa: E731
    codec.decode_chunk(good, key_for)
    with pytest.raises(FrameError):
        codec.decode_chunk(good[:-1], key_for)
    body = bytes.fromhex(VEC["vectors"][1]["envelope_hex"])
    with pytest.raises(AuthError, match="unknown"):
        codec.decode_body(body, lambda kid: None)
    with pytest.raises(AuthError, match="bad MAC"):
        codec.decode_body(body, lambda kid: bytes(32))
    with pytest.raises(DecodeError):
        codec.decode_body(b"\xd1\x84\x5a\xff\xff\xff\xff", key_for)
    with pytest.raises(DecodeError):
        codec.decode_body(b"\x81" * 400 + b"\x00", key_for)
    # downgrade: alg 5 with a valid HMAC-256/256-derived 8-byte tag
    arr = cbor2.loads(body).value
    prot = cbor2.dumps({1: 5, 6: b"\x01"})
    tag = cose.hmac_sha256(KEY, cose.mac_input(prot, arr[2], b"u"))[:8]
    with pytest.raises(AuthError, match="downgrade"):
        codec.decode_body(cbor2.dumps(cbor2.CBORTag(17, [prot, arr[1], arr[2], tag])), key_for)
    # a downlink type is not accepted as an uplink, even when correctly signed
    ack = bytes.fromhex(VEC["vectors"][-5]["envelope_hex"])
    with pytest.raises(ProtocolError):
        codec.decode_body(ack, key_for, aad=b"d")


def test_host_garbage_only_raises_protocol_errors():
    import random
    rnd = random.Random(7)
    good = bytes.fromhex(VEC["vectors"][1]["envelope_hex"])
    for _ in range(3000):
        b = bytearray(good)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        try:
            codec.decode_body(bytes(b), lambda kid: KEY)
        except ProtocolError:
            pass
