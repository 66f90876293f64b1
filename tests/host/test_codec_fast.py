"""The bridge's fast paths in host_tools/codec.py decide exactly as the plain code does:
check_payload (scalars read inline) against the one-call-per-item checker it replaced,
codec.validate (a compiled table) against protocol.messages.validate (the schema the
devices run), hmac_sha256 (RFC 2104 from two prefilled hashes) against the hmac module.
Same result, and the same error class and words, for every input tried."""
import hashlib
import hmac

import cbor2
from hypothesis import given, settings, strategies as st

from host_tools import codec
from protocol import framing, messages, schema
from protocol.errors import DecodeError, FrameError


def reference_check(b, i=0, depth=0):
    """check_payload's item walk as it was before the fast path: one call per item."""
    if depth > codec._MAX_PAYLOAD_DEPTH:
        raise DecodeError("payload nested deeper than %d" % codec._MAX_PAYLOAD_DEPTH)
    if i >= len(b):
        raise DecodeError("payload truncated")
    major = b[i] >> 5
    n, j = codec._arg(b, i)
    if major == 0:
        return j
    if major in (2, 3):
        if j + n > len(b):
            raise DecodeError("payload string runs past the end")
        return j + n
    if major == 4:
        for _ in range(n):
            j = reference_check(b, j, depth + 1)
        return j
    if major == 5:
        last = None
        for _ in range(n):
            k0 = j
            j = reference_check(b, j, depth + 1)
            key = b[k0:j]
            if last is not None and (len(last) > len(key) or (len(last) == len(key) and last >= key)):
                raise DecodeError("payload map keys not in deterministic order (or duplicated)")
            last = key
            j = reference_check(b, j, depth + 1)
        return j
    raise DecodeError("payload may hold no negative ints, tags, floats or simple values")


def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except DecodeError as e:
        return ("error", str(e))


def check_fast(raw):
    return codec._check_item(bytes(raw), 0, 0)


def check_ref(raw):
    return reference_check(bytes(raw))


# CBOR items of every kind check_payload meets, nested: canonical (cbor2) or not
scalars = st.one_of(st.integers(0, 2 ** 64 - 1), st.integers(-300, -1), st.text(max_size=30),
                    st.binary(max_size=30), st.booleans(), st.none(), st.floats(allow_nan=False))
items = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=6),
    st.dictionaries(st.one_of(st.integers(0, 300), st.text(max_size=3)), inner, max_size=6)), max_leaves=25)


@settings(max_examples=1500, deadline=None)
@given(items, st.booleans())
def test_check_payload_same_as_reference_on_cbor(obj, canonical):
    raw = cbor2.dumps(obj, canonical=canonical)
    assert outcome(check_fast, raw) == outcome(check_ref, raw), raw.hex()


@settings(max_examples=1500, deadline=None)
@given(items, st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4))
def test_check_payload_same_as_reference_on_damaged_cbor(obj, edits):
    raw = bytearray(cbor2.dumps(obj, canonical=True))
    for pos, val in edits:
        if raw:
            raw[pos % len(raw)] = val
    assert outcome(check_fast, raw) == outcome(check_ref, raw), bytes(raw).hex()


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=80))
def test_check_payload_same_as_reference_on_any_bytes(raw):
    assert outcome(check_fast, raw) == outcome(check_ref, raw), raw.hex()


def test_check_payload_depth_edge():
    # scalars one level below the deepest allowed container are still refused as too deep
    for raw in (b"\x81" * 4 + b"\xa1\x01\x02", b"\x81" * 5 + b"\x01", b"\x81" * 4 + b"\x81\x01",
                b"\xa1\x01" * 4 + b"\xa1\x01\x02", b"\x81" * 3 + b"\xa1\x01\x19\x01\x00"):
        assert outcome(check_fast, raw) == outcome(check_ref, raw), raw.hex()
    assert outcome(check_fast, b"\x81" * 5 + b"\x01")[0] == "error"


# payloads around the schema's edges: every key 0..12, bounds +-1, wrong kinds
values = st.one_of(st.integers(-2, 2 ** 41), st.sampled_from([0, 1, 100, 101, 255, 256, 2 ** 32 - 1, 2 ** 32]),
                   st.booleans(), st.text(max_size=50), st.lists(st.text(max_size=40), max_size=18),
                   st.none(), st.binary(max_size=4))
keys = st.one_of(st.integers(0, 12), st.booleans(), st.text(max_size=2))
types = st.sampled_from(sorted(messages.FIELDS) + [99, -1])


@settings(max_examples=3000, deadline=None)
@given(types, st.dictionaries(keys, values, max_size=12), st.booleans(),
       st.sampled_from([None, schema.UPLINK, messages.DOWNLINK, (messages.ACK, messages.TIME)]))
def test_validate_same_as_schema(t, fields, with_type, allowed):
    obj = dict(fields)
    if with_type:
        obj[0] = t
    assert outcome(codec.validate, obj, allowed) == outcome(messages.validate, obj, allowed), obj


def test_validate_takes_real_messages_and_refuses_their_neighbours():
    level = {1: 48213, 2: 48, 3: 1250, 4: 926, 5: 71, 6: 9, 7: 87}
    assert codec.validate(level, schema.UPLINK) == messages.LEVEL
    for bad in ({**level, 2: 101}, {**level, 8: 1}, {2: 48}, {**level, 0: messages.LEVEL},
                {True: 5}, {**level, 1: True}, {**level, 1: -1}):
        assert outcome(codec.validate, bad, schema.UPLINK) == outcome(messages.validate, bad, schema.UPLINK)
        assert outcome(codec.validate, bad, schema.UPLINK)[0] == "error", bad
    hello = {0: messages.HELLO, 1: 1, 2: "0.3.0", 3: "b", 4: "TONER-1", 6: 1000, 7: 0, 8: ["a", "b"], 9: 4}
    assert codec.validate(hello, schema.UPLINK) == messages.HELLO
    assert outcome(codec.validate, hello, messages.DOWNLINK)[0] == "error"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=130), st.binary(max_size=300))
def test_hmac_sha256_same_as_hmac_module(key, data):
    assert codec.hmac_sha256(key, data) == hmac.new(key, data, hashlib.sha256).digest()


def test_hmac_sha256_key_lengths():
    for n in (0, 1, 32, 63, 64, 65, 200):
        key = bytes(range(n % 256)) if n <= 256 else bytes(n)
        assert codec.hmac_sha256(key, b"abc") == hmac.new(key, b"abc", hashlib.sha256).digest(), n


def frame_outcome(fn, chunk):
    """The body, or FrameError (the fast COBS words some damage differently: same class)."""
    try:
        return fn(chunk)
    except FrameError:
        return FrameError


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.binary(max_size=600),
                 st.binary(max_size=300).map(lambda b: framing.encode_frame(b)[1:-1]),
                 st.tuples(st.binary(min_size=1, max_size=200), st.integers(0, 400), st.integers(0, 255)).map(
                     lambda t: _damage(framing.encode_frame(t[0])[1:-1], t[1], t[2]))))
def test_decode_frame_same_as_reference(chunk):
    assert frame_outcome(codec.decode_frame, chunk) == frame_outcome(framing.decode_frame, chunk), chunk.hex()


def _damage(chunk, pos, val):
    b = bytearray(chunk)
    b[pos % len(b)] = val
    return bytes(b)


def test_check_payload_uint_heads_inline():
    # the inline 1- and 2-byte uint heads: shortest form and bounds exactly as _arg has them
    for raw in (b"\xa1\x01\x18\x18", b"\xa1\x01\x18\x17", b"\xa1\x01\x18", b"\xa1\x01\x19\x01\x00",
                b"\xa1\x01\x19\x00\xff", b"\xa1\x01\x19\x01", b"\xa1\x01\x19", b"\xa1\x01\x1a\x00\x01\x00\x00",
                b"\xa2\x01\x18\xff\x02\x19\xff\xff"):
        assert outcome(check_fast, raw) == outcome(check_ref, raw), raw.hex()
    assert outcome(check_fast, b"\xa1\x01\x18\x17")[0] == "error"
    assert outcome(check_fast, b"\xa1\x01\x19\x00\xff")[0] == "error"
