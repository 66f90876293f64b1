# runtimes: micropython cpython
# heapsize: 128K
# Framing (COBS + CRC), the COSE_Mac0 envelope, the schema, and the golden vectors.
import json

from protocol import cbor, cose, framing, messages, schema, wire
from protocol.errors import AuthError, DecodeError, FrameError, ProtocolError

KEY = bytes(range(32))


def _vectors():
    with open("protocol/vectors/vectors.json") as f:
        return json.load(f)


def test_crc16_check_value():
    # CRC-16/CCITT-FALSE check value from the CRC catalogue
    assert framing.crc16(b"123456789") == 0x29B1
    assert framing._crc16(b"123456789") == 0x29B1  # the pure version, on CPython too


def test_cobs_roundtrip_boundaries():
    for n in (0, 1, 2, 253, 254, 255, 256, 508, 509, 600):
        for fill in (0, 1, 0xFF):
            data = bytes((fill if i % 7 else 0) for i in range(n))
            enc = framing.cobs_encode(data)
            assert b"\x00" not in enc
            assert framing.cobs_decode(enc) == data, (n, fill)
            assert len(enc) <= n + n // 254 + 1


def test_frame_detects_every_single_bit_flip():
    f = wire.pack(KEY, "tnr-0001", 5, {1: 10, 2: 50, 6: 9})
    chunk = wire.unframe(f)
    flips = 0
    for i in range(len(chunk)):
        for bit in range(8):
            b = bytearray(chunk)
            b[i] ^= 1 << bit
            try:
                wire.unpack(bytes(b), lambda k: KEY)
            except ProtocolError:
                flips += 1
                continue
            raise AssertionError("flip at byte %d bit %d accepted" % (i, bit))
    assert flips == len(chunk) * 8


def test_deframer_resyncs_through_text_and_noise():
    d = framing.Deframer()
    f1 = wire.pack(KEY, "a", 1, {1: 1, 2: 1, 6: 1})
    f2 = wire.pack(KEY, "a", 2, {1: 2, 2: 2, 6: 2})
    stream = b"MicroPython v1.29\r\n>>> " + f1 + b"log: sampled 42\r\n" + f2 + b"\xff\xfe junk"
    chunks = []
    for i in range(0, len(stream), 7):  # arrives in small pieces
        chunks += d.feed(stream[i:i + 7])
    good = []
    for c in chunks:
        try:
            good.append(wire.unpack(c, lambda k: KEY)[1])
        except ProtocolError:
            pass
    assert good == [1, 2], good


def test_deframer_bounds_memory():
    d = framing.Deframer()
    assert d.feed(b"\x41" * 5000) == []
    assert len(d.buf) <= framing.MAX_FRAME and d.overflows == 1
    f = wire.pack(KEY, "a", 3, {1: 1, 2: 1, 6: 1})
    out = d.feed(f)  # the rest of the flood is skipped until the next 0x00
    assert len(out) == 1 and wire.unpack(out[0], lambda k: KEY)[1] == 3


def test_oversize_frame_rejected():
    try:
        framing.decode_frame(b"\x01" * (framing.MAX_FRAME + 1))
    except FrameError:
        return
    raise AssertionError("oversize accepted")


def _expect(exc, fn):
    try:
        fn()
    except exc as e:
        return str(e)
    raise AssertionError("no %s" % exc.__name__)


def test_cose_rejections():
    payload = cbor.dumps({1: 5, 2: 9, 6: 10})
    env = cose.encode(KEY, "tnr-0001", 7, payload)
    assert cose.verify(env, lambda k: KEY)[1] == 7
    # forged tag
    bad = env[:-1] + bytes((env[-1] ^ 1,))
    assert "bad MAC" in _expect(AuthError, lambda: cose.verify(bad, lambda k: KEY))
    # wrong key
    _expect(AuthError, lambda: cose.verify(env, lambda k: bytes(32)))
    # unknown device
    assert "unknown" in _expect(AuthError, lambda: cose.verify(env, lambda k: None))
    # wrong direction: an uplink replayed as a downlink
    _expect(AuthError, lambda: cose.verify(env, lambda k: KEY, cose.AAD_DOWN))
    # truncated tag (HMAC 256/32 style)
    arr = cbor.loads(env).value
    short = cbor.dumps(cbor.Tag(17, [arr[0], arr[1], arr[2], arr[3][:4]]))
    _expect(AuthError, lambda: cose.verify(short, lambda k: KEY))
    # algorithm downgrade: alg 5 (HMAC 256/256) or none, even with a matching MAC
    for alg in (5, 25, -1, True):
        prot = cbor.dumps({1: alg, 6: b"\x07"})
        tag = cose.hmac_sha256(KEY, cose.mac_input(prot, payload, cose.AAD_UP))[:8]
        forged = cbor.dumps(cbor.Tag(17, [prot, {4: b"tnr-0001"}, payload, tag]))
        _expect(AuthError, lambda: cose.verify(forged, lambda k: KEY))
    # untagged / wrong tag
    _expect(AuthError, lambda: cose.verify(cbor.dumps(arr), lambda k: KEY))
    _expect(AuthError, lambda: cose.verify(cbor.dumps(cbor.Tag(18, arr)), lambda k: KEY))
    # sequence number with a leading zero byte (non-minimal Partial IV)
    prot = cbor.dumps({1: 4, 6: b"\x00\x07"})
    tag = cose.hmac_sha256(KEY, cose.mac_input(prot, payload, cose.AAD_UP))[:8]
    _expect(AuthError, lambda: cose.verify(cbor.dumps(cbor.Tag(17, [prot, {4: b"x"}, payload, tag])), lambda k: KEY))


def test_hmac_sha256_rfc4231_case2():
    mac = cose.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert mac.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_schema_validation():
    messages.validate({1: 10, 2: 50, 6: 10})
    for bad in ({1: 10, 2: 101, 6: 1}, {1: -1, 2: 5, 6: 1}, {2: 5, 6: 1}, {0: 2, 1: 1, 2: 1, 6: 1},
                {0: 99}, {1: 1, 2: 1, 6: 1, 42: 0}, {0: 17, 1: 0}, {0: 18, 1: 7}, [1, 2], {0: 19, 1: "", 2: 1},
                {1: True, 2: 1, 6: 1},
                {0: [1]}, {0: {}}, {0: 1.5}, {0: True}):  # found by tests/fuzz: unhashable type
        _expect(DecodeError, lambda: messages.validate(bad))
    _expect(DecodeError, lambda: messages.validate({0: 16, 1: 3}, schema.UPLINK))


def test_named_roundtrip_and_consent_table():
    p = schema.from_named("config", {"report_s": 60, "lead_time_h": 48})
    assert p == {0: 17, 2: 60, 4: 48}
    assert schema.to_named(p) == ("config", {"report_s": 60, "lead_time_h": 48})
    assert messages.required_consent({1: 1, 2: 1, 6: 1}) == messages.CONSENT_FULL
    assert messages.required_consent({0: 3, 1: 2, 2: 0, 5: 0}) == messages.CONSENT_ORDER_ONLY
    assert messages.required_consent({0: 3, 1: 2, 2: 0, 5: 1}) == messages.CONSENT_AUTOMATIC
    assert messages.required_consent({0: 3, 1: 1, 2: 0}) == messages.CONSENT_REMINDERS
    assert messages.required_consent({0: 3, 1: 5, 2: 0}) == messages.CONSENT_NONE


def test_golden_vectors_byte_for_byte():
    v = _vectors()
    key = bytes.fromhex(v["key_hex"])
    n = 0
    for vec in v["vectors"]:
        raw = bytes.fromhex(vec["payload_hex"])
        payload = cbor.loads(raw)
        assert cbor.dumps(payload) == raw, vec["name"]
        aad = cose.AAD_UP if vec["direction"] == "up" else cose.AAD_DOWN
        frame = wire.pack(key, v["kid"], vec["seq"], payload, aad)
        assert frame.hex() == vec["frame_hex"], vec["name"]
        kid, seq, got = wire.unpack(wire.unframe(frame), lambda k: key, aad)
        assert seq == vec["seq"] and got == payload and kid == v["kid"].encode()
        n += 1
    assert n >= 15


def test_level_report_size_budget():
    for vec in _vectors()["vectors"]:
        if vec["name"].startswith("level"):
            assert vec["sizes"]["payload"] <= 24, vec
            assert vec["sizes"]["frame"] <= 64, vec
    # the worst case: every field at its widest plausible value and a 5-byte sequence number
    worst = {1: 65535, 2: 100, 3: 65535, 4: 65535, 5: 255, 6: 10, 7: 100}
    assert len(cbor.dumps(worst)) <= 24
    assert len(wire.pack(KEY, "abcdefgh", (1 << 40) - 1, worst)) <= 64


def test_hmac_sha256_rfc4231_long_key_and_bad_mac():
    # case 6: a key longer than the block is hashed first; bytearray keys work too
    mac = cose.hmac_sha256(bytearray(b"\xaa" * 131), b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert mac.hex() == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    env = cose.encode(KEY, "dev", 5, b"p")
    assert cose.verify(env, lambda k: KEY) == (b"dev", 5, b"p")
    for i in range(1, 9):  # every byte of the 8-byte tag matters
        bad = bytearray(env)
        bad[-i] ^= 0x80
        try:
            cose.verify(bytes(bad), lambda k: KEY)
            assert False, i
        except AuthError as e:
            assert "bad MAC" in str(e)
