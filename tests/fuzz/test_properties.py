"""Property tests (hypothesis): the shared codec agrees with cbor2, and no byte string
makes any decoder on the host's input path raise anything but a ProtocolError."""
import math

import cbor2
from hypothesis import given, settings, strategies as st, HealthCheck

from host_tools import codec
from protocol import cbor, cose, framing, messages, wire
from protocol.errors import ProtocolError

KEY = bytes(range(32))
scalars = (st.integers(min_value=-(2 ** 64), max_value=2 ** 64 - 1) | st.binary(max_size=40)
           | st.text(max_size=20) | st.booleans() | st.none()
           | st.floats(allow_nan=False, allow_infinity=True))
keys = st.integers(min_value=-1000, max_value=2 ** 40) | st.text(max_size=8)
objects = st.recursive(scalars, lambda kids: st.lists(kids, max_size=5) | st.dictionaries(keys, kids, max_size=5),
                       max_leaves=20)


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(objects)
def test_dumps_matches_cbor2_canonical(obj):
    ours = cbor.dumps(obj)
    if not _mixed_key_lengths(obj):
        # cbor2's canonical mode sorts keys length-first (RFC 7049 §3.9); RFC 8949 §4.2.1,
        # which we follow, sorts bytewise. The two agree unless a map mixes key lengths in
        # a way where a longer encoding sorts first bytewise ({24: .., "": ..}).
        assert ours == cbor2.dumps(obj, canonical=True)
    assert same(cbor.loads(ours), obj)
    assert same(cbor2.loads(ours), obj)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=80))
def test_loads_never_raises_other_errors(data):
    try:
        cbor.loads(data)
    except ProtocolError:
        pass


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=120))
def test_host_input_path_bytes_to_message(data):
    """bytes from the line -> frames -> CBOR -> COSE -> message: only ProtocolError."""
    d = framing.Deframer()
    for chunk in d.feed(data + b"\x00"):
        try:
            codec.decode_chunk(chunk, lambda kid: KEY)
        except ProtocolError:
            pass
    assert len(d.buf) <= framing.MAX_FRAME


def _mixed_key_lengths(obj):
    if isinstance(obj, list):
        return any(_mixed_key_lengths(x) for x in obj)
    if isinstance(obj, dict):
        enc = sorted(cbor.dumps(k) for k in obj)
        if enc != sorted(enc, key=lambda e: (len(e), e)):
            return True
        return any(_mixed_key_lengths(v) for v in obj.values())
    return False


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(0, 2 ** 40), st.integers(), max_size=8))
def test_integer_keyed_maps_identical_to_cbor2(obj):
    # every protocol message is an integer-keyed map: there the two orders coincide
    assert cbor.dumps(obj) == cbor2.dumps(obj, canonical=True)


level = st.fixed_dictionaries({1: st.integers(0, 2 ** 32), 2: st.integers(0, 100), 6: st.integers(0, 10)},
                              optional={3: st.integers(0, 65535), 4: st.integers(0, 2 ** 20),
                                        5: st.integers(0, 2 ** 16), 7: st.integers(0, 100)})


@settings(max_examples=300, deadline=None)
@given(level, st.integers(0, cose.MAX_SEQ), st.text(alphabet="abcdefgh0123456789-", min_size=1, max_size=8))
def test_any_valid_level_roundtrips_through_both_codecs(payload, seq, kid):
    frame = wire.pack(KEY, kid, seq, payload)
    chunk = wire.unframe(frame)
    assert wire.unpack(chunk, lambda k: KEY)[2] == payload
    msg = codec.decode_chunk(chunk, lambda k: KEY)
    assert msg.seq == seq and msg.device == kid and msg.type == "level"
    assert msg.remaining == payload[1]


@settings(max_examples=300, deadline=None)
@given(level, st.integers(0, 1000), st.integers(0, 60), st.integers(0, 7))
def test_any_single_bit_flip_is_rejected(payload, seq, pos, bit):
    chunk = bytearray(wire.unframe(wire.pack(KEY, "dev", seq, payload)))
    chunk[pos % len(chunk)] ^= 1 << bit
    try:
        codec.decode_chunk(bytes(chunk), lambda k: KEY)
    except ProtocolError:
        return
    raise AssertionError("a flipped bit was accepted")
