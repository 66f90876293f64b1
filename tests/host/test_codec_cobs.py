"""The host's fast COBS (host_tools/codec.py) against the protocol's reference
(protocol/framing.py, which runs on the devices): the same bytes for every input, and
FrameError for exactly the same inputs."""
from hypothesis import given, settings, strategies as st

from host_tools import codec
from protocol import framing
from protocol.errors import FrameError

EDGES = [b"", b"\x00", b"\x00\x00", b"\x01" * 253, b"\x01" * 254, b"\x01" * 255, b"\x01" * 254 + b"\x00",
         b"\x00" + b"\x02" * 508 + b"\x00", bytes(range(256)) * 3]


def same_decode(data):
    try:
        want = framing.cobs_decode(data)
    except FrameError:
        want = FrameError
    try:
        got = codec.cobs_decode(data)
    except FrameError:
        got = FrameError
    assert got == want, data


def test_edges():
    for d in EDGES:
        assert codec.cobs_encode(d) == framing.cobs_encode(d), d
        assert codec.cobs_decode(codec.cobs_encode(d)) == d
        same_decode(d)
        same_decode(codec.cobs_encode(d))
    for bad in (b"\x05\x01", b"\x02\x00", b"\x00", b"\x03\x01\x00\x01", b"\xff" + b"\x01" * 10):
        same_decode(bad)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=1100))
def test_encode_matches_reference(data):
    enc = codec.cobs_encode(data)
    assert enc == framing.cobs_encode(data)
    assert codec.cobs_decode(enc) == data


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=600))
def test_decode_matches_reference_on_any_bytes(data):
    same_decode(data)


def test_frame_matches_reference():
    for body in EDGES[:-1] + [bytes(range(1, 200))]:
        assert codec.encode_frame(body) == framing.encode_frame(body)


def test_fast_ack_is_byte_for_byte_encode_downlink():
    from protocol import messages
    key = bytes(range(32))
    edges = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 - 1]
    for dev in ("d", "printer-01", "x" * 16):
        for dseq in edges:
            for seq in edges:
                want = codec.encode_downlink(key, dev, dseq, {0: messages.ACK, 1: seq})
                assert codec.encode_ack(key, dev, dseq, seq) == want, (dev, dseq, seq)


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=0, max_size=600), st.binary(max_size=30), st.sampled_from([b"u", b"d"]))
def test_mac_structure_matches_cbor2(payload, prot, aad):
    import hashlib
    import hmac

    import cbor2
    key = b"k" * 32
    want = hmac.new(key, cbor2.dumps(["MAC0", prot, aad, payload]), hashlib.sha256).digest()[:8]
    assert codec._mac(key, prot, payload, aad) == want
