# runtimes: micropython cpython
# heapsize: 256K  (the test tables, not the codec, need the room)
# The CBOR codec against RFC 8949 Appendix A, round trips and hostile input.
from protocol import cbor
from protocol.errors import DecodeError, ProtocolError
from protocol.cbor import Tag, Simple, UNDEFINED

import struct
INF = float("inf")
# 2**-14 from its bits: MicroPython's float32 parser reads the literal 0.00006103515625
# 1 ulp off (6.1035152e-05), so the literal would test the parser, not the codec
TWO_M14 = struct.unpack(">f", bytes.fromhex("38800000"))[0]
NAN = float("nan")

# (hex, value, deterministic): deterministic means dumps(value) must give these bytes
APPENDIX_A = [
    ("00", 0, 1), ("01", 1, 1), ("0a", 10, 1), ("17", 23, 1), ("1818", 24, 1), ("1819", 25, 1),
    ("1864", 100, 1), ("1903e8", 1000, 1), ("1a000f4240", 1000000, 1),
    ("1b000000e8d4a51000", 1000000000000, 1), ("1bffffffffffffffff", 18446744073709551615, 1),
    ("c249010000000000000000", 18446744073709551616, 1),
    ("3bffffffffffffffff", -18446744073709551616, 1),
    ("c349010000000000000000", -18446744073709551617, 1),
    ("20", -1, 1), ("29", -10, 1), ("3863", -100, 1), ("3903e7", -1000, 1),
    ("f90000", 0.0, 1), ("f98000", -0.0, 1), ("f93c00", 1.0, 1), ("fb3ff199999999999a", 1.1, 1),
    ("f93e00", 1.5, 1), ("f97bff", 65504.0, 1), ("fa47c35000", 100000.0, 1),
    ("fa7f7fffff", 3.4028234663852886e+38, 1), ("fb7e37e43c8800759c", 1.0e+300, 1),
    ("f90001", 5.960464477539063e-8, 1), ("f90400", TWO_M14, 1), ("f9c400", -4.0, 1),
    ("fbc010666666666666", -4.1, 1), ("f97c00", INF, 1), ("f97e00", NAN, 1), ("f9fc00", -INF, 1),
    ("fa7f800000", INF, 0), ("fa7fc00000", NAN, 0), ("faff800000", -INF, 0),
    ("fb7ff0000000000000", INF, 0), ("fb7ff8000000000000", NAN, 0), ("fbfff0000000000000", -INF, 0),
    ("f4", False, 1), ("f5", True, 1), ("f6", None, 1), ("f7", UNDEFINED, 1),
    ("f0", Simple(16), 1), ("f8ff", Simple(255), 1),
    ("c074323031332d30332d32315432303a30343a30305a", Tag(0, "2013-03-21T20:04:00Z"), 1),
    ("c11a514b67b0", Tag(1, 1363896240), 1), ("c1fb41d452d9ec200000", Tag(1, 1363896240.5), 1),
    ("d74401020304", Tag(23, b"\x01\x02\x03\x04"), 1), ("d818456449455446", Tag(24, b"dIETF"), 1),
    ("d82076687474703a2f2f7777772e6578616d706c652e636f6d", Tag(32, "http://www.example.com"), 1),
    ("40", b"", 1), ("4401020304", b"\x01\x02\x03\x04", 1), ("60", "", 1), ("6161", "a", 1),
    ("6449455446", "IETF", 1), ("62225c", "\"\\", 1), ("62c3bc", "\u00fc", 1),
    ("63e6b0b4", "\u6c34", 1), ("64f0908591", "\U00010151", 1),
    ("80", [], 1), ("83010203", [1, 2, 3], 1), ("8301820203820405", [1, [2, 3], [4, 5]], 1),
    ("98190102030405060708090a0b0c0d0e0f101112131415161718181819", list(range(1, 26)), 1),
    ("a0", {}, 1), ("a201020304", {1: 2, 3: 4}, 1), ("a26161016162820203", {"a": 1, "b": [2, 3]}, 1),
    ("826161a161626163", ["a", {"b": "c"}], 1),
    ("a56161614161626142616361436164614461656145", {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}, 1),
    ("5f42010243030405ff", b"\x01\x02\x03\x04\x05", 0), ("7f657374726561646d696e67ff", "streaming", 0),
    ("9fff", [], 0), ("9f018202039f0405ffff", [1, [2, 3], [4, 5]], 0),
    ("9f01820203820405ff", [1, [2, 3], [4, 5]], 0), ("83018202039f0405ff", [1, [2, 3], [4, 5]], 0),
    ("83019f0203ff820405", [1, [2, 3], [4, 5]], 0),
    ("9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff", list(range(1, 26)), 0),
    ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}, 0), ("826161bf61626163ff", ["a", {"b": "c"}], 0),
    ("bf6346756ef563416d7421ff", {"Fun": True, "Amt": -2}, 0),
]


# An ESP32's floats are single precision (MICROPY_FLOAT_IMPL_FLOAT): a literal such as 1.1
# is already the nearest float32 there, so its shortest encoding is 4 bytes, and 1.0e300
# is inf. These are the encodings of the float32 values (checked with cbor2, canonical).
F32 = 16777217.0 == 16777216.0
F32_ENC = {"fb3ff199999999999a": "fa3f8ccccd", "fb7e37e43c8800759c": "f97c00",
           "fbc010666666666666": "fac0833333", "c1fb41d452d9ec200000": "c1fa4ea296cf"}


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        if a != a:
            return b != b
        # -0.0 and 0.0 differ on the wire: compare the sign too
        return a == b and str(a)[0] == str(b)[0]
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, Tag) and isinstance(b, Tag):
        return a.tag == b.tag and same(a.value, b.value)
    return type(a) == type(b) and a == b


def test_appendix_a_decode():
    for hx, value, _ in APPENDIX_A:
        got = cbor.loads(bytes.fromhex(hx))
        assert same(got, value), "%s decoded as %r, want %r" % (hx, got, value)


def test_appendix_a_encode_deterministic():
    n = 0
    for hx, value, det in APPENDIX_A:
        if det:
            if F32:
                hx = F32_ENC.get(hx, hx)
            got = cbor.dumps(value).hex()
            assert got == hx, "%r encoded as %s, want %s" % (value, got, hx)
            n += 1
    assert n > 60


def test_map_keys_sorted_bytewise():
    # RFC 8949 §4.2.1: shorter encodings sort first, then bytewise
    d = {100: 1, -1: 2, 10: 3, "z": 4, "aa": 5, b"\x00": 6}
    enc = cbor.dumps(d)
    keys = list(cbor.loads(enc).keys())
    encoded = [cbor.dumps(k) for k in keys]
    # re-encode pairs in wire order and check order is ascending
    order = []
    i = 1
    dec = enc[1:]
    for k in sorted(d, key=lambda k: cbor.dumps(k)):
        order.append(cbor.dumps(k))
    assert order == sorted(order)
    assert enc[1:2] == b"\x0a" and enc[3:5] == b"\x18\x64", enc.hex()


def _rng(seed):
    s = [seed or 1]

    def nxt():
        x = s[0]
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        s[0] = x & 0xFFFFFFFF
        return s[0]
    return nxt


def _random_obj(r, depth=0):
    k = r() % (9 if depth < 3 else 5)
    if k == 0:
        return r() - 2147483648
    if k == 1:
        return r() * r() * r()
    if k == 2:
        return bytes(r() & 0xFF for _ in range(r() % 20))
    if k == 3:
        return "".join(chr(97 + r() % 26) for _ in range(r() % 12))
    if k == 4:
        return (True, False, None)[r() % 3]
    if k == 5 or k == 6:
        return [_random_obj(r, depth + 1) for _ in range(r() % 5)]
    if k == 7:
        return {r() % 1000 - 500: _random_obj(r, depth + 1) for _ in range(r() % 5)}
    return Tag(r() % 1000 + 4, _random_obj(r, depth + 1))


def test_roundtrip_random():
    r = _rng(12345)
    for _ in range(300):
        obj = _random_obj(r)
        enc = cbor.dumps(obj)
        assert same(cbor.loads(enc), obj) or cbor.dumps(cbor.loads(enc)) == enc, obj


def _rejects(hx, why):
    try:
        cbor.loads(bytes.fromhex(hx))
    except DecodeError:
        return
    raise AssertionError("accepted %s (%s)" % (hx, why))


def test_hostile_inputs_rejected():
    _rejects("", "empty")
    _rejects("5affffffff00", "4 GB byte string declared")
    _rejects("7bffffffffffffffff", "huge text")
    _rejects("9bffffffffffffffff", "huge array")
    _rejects("bbffffffffffffffff", "huge map")
    _rejects("81" * 40 + "00", "deep nesting")
    _rejects("9f" * 40 + "ff" * 40, "deep indefinite nesting")
    _rejects("0000", "trailing bytes")
    _rejects("62c328", "invalid UTF-8")
    _rejects("a201020103", "duplicate key")
    _rejects("1c", "reserved info 28")
    _rejects("ff", "lone break")
    _rejects("8201ff", "break in definite array")
    _rejects("5f6161ff", "text chunk in byte string")
    _rejects("1f", "indefinite uint")
    _rejects("f818", "simple value < 32 in two bytes")
    _rejects("a18100", "array as map key")
    _rejects("c2820102", "bignum of non-bytes")
    _rejects("9f", "unterminated indefinite array")


def test_truncations_all_rejected():
    full = cbor.dumps({1: [1, 2, {"x": b"abc"}], 2: "hello", 3: 1.5, 4: -100000, 5: Tag(99, [True])})
    for i in range(len(full)):
        try:
            cbor.loads(full[:i])
        except DecodeError:
            continue
        raise AssertionError("truncated at %d accepted" % i)


def test_mutation_fuzz_only_decode_errors():
    base = bytes.fromhex("d18448a201040643011170a10448746e722d303030315483a1616101f5f6824101")
    r = _rng(99)
    ok = bad = 0
    for _ in range(3000):
        b = bytearray(base)
        for _ in range(1 + r() % 4):
            op = r() % 3
            if op == 0:
                b[r() % len(b)] = r() & 0xFF
            elif op == 1 and len(b) > 1:
                i = r() % len(b)
                b = b[:i] + b[i + 1:]
            else:
                i = r() % len(b)
                b = b[:i] + bytearray((r() & 0xFF,)) + b[i:]
        try:
            cbor.loads(bytes(b))
            ok += 1
        except DecodeError:
            bad += 1
        # any other exception escapes and fails the test
    assert bad > 100 and ok + bad == 3000


def test_error_type_is_documented_family():
    try:
        cbor.loads(b"\x5a\xff")
    except ProtocolError as e:
        assert isinstance(e, ValueError)
        assert "truncated" in str(e)
    else:
        raise AssertionError("no error")


def test_unencodable_type_raises_typeerror():
    try:
        cbor.dumps(object())
    except TypeError:
        return
    raise AssertionError("encoded an object()")


def test_int_width_boundaries():
    # the 64-bit limits of major types 0/1, beyond them bignums (tags 2/3), on every port
    cases = [(2 ** 32 - 1, "1affffffff"), (2 ** 32, "1b0000000100000000"),
             (2 ** 64 - 1, "1bffffffffffffffff"), (2 ** 64, "c249010000000000000000"),
             (-2 ** 32, "3affffffff"), (-2 ** 64, "3bffffffffffffffff"),
             (-2 ** 64 - 1, "c349010000000000000000")]
    for v, h in cases:
        enc = cbor.dumps(v)
        assert enc == bytes.fromhex(h), (v, enc)
        assert cbor.loads(enc) == v
    assert cbor.dumps({2 ** 64 - 1: 1, 0: 2}) == bytes.fromhex("a200021bffffffffffffffff01")
    assert cbor.loads(cbor.dumps({2 ** 64: 1})) == {2 ** 64: 1}  # a bignum key: the ext path


def test_error_messages_name_the_fault():
    # a truncated text string is "truncated", not "invalid UTF-8"; a missing head byte
    # and a missing 1-byte argument say where
    for hx, want in (("63c3bc", "truncated: need 3 bytes at offset 1"),
                     ("", "truncated at offset 0"), ("8118", "truncated at offset 2"),
                     ("7f61c3ff", "invalid UTF-8"), ("7f6161", "truncated at offset 3"),
                     ("1c", "reserved additional info 28 at offset 0"),
                     ("a100", "map of 1 pairs exceeds the data")):
        try:
            cbor.loads(bytes.fromhex(hx))
        except DecodeError as e:
            assert str(e).startswith(want), (hx, str(e))
        else:
            raise AssertionError("accepted " + hx)
