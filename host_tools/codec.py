"""Host-side decoding: frames -> verified, typed messages, with cbor2 and hmac.

The device side uses protocol/cbor.py; the host uses cbor2 (C-accelerated, widely
hardened) and the standard library's hmac with a constant-time compare. The golden
vectors in protocol/vectors/ prove both produce and accept the same bytes.
"""
from __future__ import annotations

import binascii
import hashlib
import hmac
from dataclasses import dataclass, field, fields as dc_fields

import cbor2

from protocol import cose, framing, messages, schema
from protocol.errors import AuthError, DecodeError, FrameError, ProtocolError

__all__ = ["decode_body", "decode_chunk", "encode_downlink", "Message", "TYPES", "ProtocolError"]


def _loads(raw: bytes):
    try:
        return cbor2.loads(raw)
    except ProtocolError:
        raise
    except Exception as e:  # cbor2 raises several types for malformed input
        raise DecodeError("bad CBOR: %s" % e) from None


_HMACS: dict = {}   # key -> HMAC-SHA-256 with the key already absorbed (copied per message)


def _head(major: int, n: int) -> bytes:
    """A CBOR head (RFC 8949 §3): major type and argument, shortest form."""
    if n < 24:
        return bytes((major << 5 | n,))
    if n < 0x100:
        return bytes((major << 5 | 24, n))
    if n < 0x10000:
        return bytes((major << 5 | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((major << 5 | 26,)) + n.to_bytes(4, "big")
    return bytes((major << 5 | 27,)) + n.to_bytes(8, "big")


def _bstr(b: bytes) -> bytes:
    return _head(2, len(b)) + b


_MAC0_CONTEXT = b"\x84\x64MAC0"   # ["MAC0", ...: an array of 4, then the text "MAC0"


def _mac(key: bytes, prot: bytes, payload: bytes, aad: bytes) -> bytes:
    # MAC_structure (RFC 9052 §6.3) ["MAC0", protected, external_aad, payload], the bytes
    # cbor2.dumps would give, built directly (a cbor2.dumps call costs ~4 us here)
    tbs = _MAC0_CONTEXT + _bstr(prot) + _bstr(aad) + _bstr(payload)
    h = _HMACS.get(key)
    if h is None:
        if len(_HMACS) > 20000:   # bounded: a registry's worth of keys
            _HMACS.clear()
        h = _HMACS[key] = hmac.new(key, None, hashlib.sha256)
    h = h.copy()
    h.update(tbs)
    return h.digest()[: cose.TAG_LEN]


# COBS for the host, the same bytes as protocol/framing.py's (which must run on
# MicroPython, byte by byte): here with bytes.split and slices, ~5x faster on CPython.
# tests/host/test_codec_cobs.py checks both agree on every input, errors included.
def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    for block in bytes(data).split(b"\x00"):
        while len(block) >= 254:
            out.append(0xFF)
            out += block[:254]
            block = block[254:]
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    if b"\x00" in data:
        raise FrameError("zero byte inside a COBS frame")
    n, i = len(data), 0
    out = bytearray()
    while i < n:
        code = data[i]
        end = i + code
        if end > n:
            raise FrameError("COBS block runs past the end of the frame")
        out += data[i + 1:end]
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(body: bytes) -> bytes:
    """protocol.framing.encode_frame with the fast COBS: 00 | COBS(body | crc16) | 00."""
    if len(body) > framing._MAX_BODY:
        raise FrameError("body of %d bytes exceeds %d" % (len(body), framing._MAX_BODY))
    c = binascii.crc_hqx(body, 0xFFFF)
    return b"\x00" + cobs_encode(bytes(body) + bytes((c >> 8, c & 0xFF))) + b"\x00"


def parse_envelope(body: bytes):
    """(kid, seq, protected, payload, tag) of a COSE_Mac0 in this protocol's form."""
    obj = _loads(body)
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != cose.TAG_MAC0:
        raise AuthError("not a tagged COSE_Mac0")
    arr = obj.value  # cbor2 6 gives a tuple inside tags
    if not isinstance(arr, (list, tuple)) or len(arr) != 4:
        raise AuthError("COSE_Mac0 must be an array of 4")
    prot, unprot, payload, tag = arr
    if not (isinstance(prot, bytes) and isinstance(unprot, dict) and isinstance(payload, bytes)
            and isinstance(tag, bytes)):
        raise AuthError("COSE_Mac0 fields have wrong types")
    hdr = _loads(prot)
    if not isinstance(hdr, dict) or hdr.get(1) != cose.ALG_HMAC_256_64 or set(hdr) != {1, 6}:
        raise AuthError("protected header must be {1: 4, 6: piv} (alg downgrade or extra fields)")
    if type(hdr.get(1)) is not int:  # 4.0 or True compare equal to 4 / 1: pin the type too
        raise AuthError("bad alg")
    if len(tag) != cose.TAG_LEN:
        raise AuthError("MAC tag must be %d bytes" % cose.TAG_LEN)
    kid = unprot.get(4)
    if not isinstance(kid, bytes) or not 1 <= len(kid) <= 16 or set(unprot) != {4}:
        raise AuthError("missing or bad kid")
    return kid, cose.piv_value(hdr[6]), prot, payload, tag


def decode_body(body: bytes, key_for, aad: bytes = cose.AAD_UP, allowed=schema.UPLINK) -> "Message":
    """Verify and decode one envelope. key_for(kid: bytes) -> key or None."""
    kid, seq, prot, payload, tag = parse_envelope(body)
    key = key_for(kid)
    if key is None:
        raise AuthError("unknown device %r" % kid.decode("ascii", "replace"))
    if not hmac.compare_digest(_mac(key, prot, payload, aad), tag):
        raise AuthError("bad MAC")
    obj = _loads(payload)
    t = messages.validate(obj, allowed)
    return make_message(kid.decode("ascii", "replace"), seq, t, obj)


def decode_chunk(chunk: bytes, key_for, aad: bytes = cose.AAD_UP, allowed=schema.UPLINK) -> "Message":
    """A chunk between two 0x00 delimiters -> Message (FrameError/AuthError/DecodeError)."""
    return decode_body(framing.decode_frame(chunk), key_for, aad, allowed)


def encode_ack(key: bytes, device: str, dseq: int, seq: int) -> bytes:
    """encode_downlink(key, device, dseq, {0: ACK, 1: seq}), byte for byte, with the few
    CBOR items of an ack written directly: the bridge sends one per frame it stores.
    tests/host/test_codec_cobs.py compares the two over the whole range of both seqs."""
    prot = b"\xa2\x01" + _head(0, cose.ALG_HMAC_256_64) + b"\x06" + _bstr(cose.piv_bytes(dseq))
    raw = b"\xa2\x00" + _head(0, messages.ACK) + b"\x01" + _head(0, seq)
    kid = device.encode()
    env = (_head(6, cose.TAG_MAC0) + b"\x84" + _bstr(prot) + b"\xa1\x04" + _bstr(kid) + _bstr(raw)
           + _bstr(_mac(key, prot, raw, cose.AAD_DOWN)))
    return encode_frame(env)


def encode_downlink(key: bytes, device: str, seq: int, payload: dict, check: bool = True) -> bytes:
    """Build a framed downlink command (direction-bound with external AAD b'd').
    check=False skips the schema check for a payload the caller built itself (an ack)."""
    if check:
        messages.validate(payload, messages.DOWNLINK)
    prot = cbor2.dumps({1: cose.ALG_HMAC_256_64, 6: cose.piv_bytes(seq)})
    raw = cbor2.dumps(payload, canonical=True)
    env = cbor2.dumps(cbor2.CBORTag(cose.TAG_MAC0, [prot, {4: device.encode()}, raw,
                                                     _mac(key, prot, raw, cose.AAD_DOWN)]))
    return encode_frame(env)


# ------------------------------------------------------------------ typed messages

@dataclass
class Message:
    device: str
    seq: int
    type: str = ""

    def fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dc_fields(self)
                if f.name not in ("device", "seq", "type") and getattr(self, f.name) is not None}

    def to_json(self) -> dict:
        d = {"device": self.device, "seq": self.seq, "type": self.type}
        d.update(self.fields())
        if self.type == "event":
            d["kind_name"] = schema.EVENT_NAMES.get(self.kind, str(self.kind))
        return d


@dataclass
class Hello(Message):
    proto: int = 0
    fw: str = ""
    board: str = ""
    sku: str = ""
    model: str | None = None
    capacity: int = 0
    unit: int = 0
    refills: list | None = None
    consent: int = 0
    boot: int | None = None
    dropped: int | None = None   # messages the outbox dropped by policy (None: 0)

    @property
    def unit_name(self) -> str:
        return messages.UNITS[self.unit]


@dataclass
class Level(Message):
    remaining: int = 0
    fill_pct: int = 0
    rate_per_day: int | None = None
    tte_h: int | None = None
    tte_err_h: int | None = None
    quality: int = 0
    battery_pct: int | None = None


@dataclass
class Event(Message):
    kind: int = 0
    episode: int = 0
    key: str | None = None
    value: int | None = None
    trigger: int | None = None

    @property
    def kind_name(self) -> str:
        return schema.EVENT_NAMES.get(self.kind, str(self.kind))


@dataclass
class Usage(Message):
    consumed_milli: int = 0
    episode: int = 0
    dropped: int | None = None   # messages the outbox dropped by policy (None: 0)


TYPES = {"hello": Hello, "level": Level, "event": Event, "usage": Usage}


def make_message(device: str, seq: int, t: int, payload: dict) -> Message:
    name, named = schema.to_named(payload)
    cls = TYPES.get(name)
    if cls is None:  # downlink types seen on the host (tests, tools): keep them generic
        m = Message(device, seq, name)
        m.__dict__.update(named)
        return m
    return cls(device=device, seq=seq, type=name, **named)
