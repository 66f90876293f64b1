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


# The only envelope the protocol has (protocol/SPEC.md "Canonical envelope"): the bytes
# cose.encode produces, nothing else. The MAC covers the protected header, the direction
# and the payload but not the outer encoding, so a parser that accepted other encodings
# of the same message (a self-describe tag in front, long heads, another unprotected map)
# would let anyone re-encode a device's frame into different bytes with a valid MAC.
_PROT_HEAD = b"\xa2\x01\x04\x06"    # {1: 4, 6: ...}: alg HMAC 256/64, then the Partial IV
_MAX_PAYLOAD_DEPTH = 4              # a payload is a map of uints, texts and lists of texts


def _take_bstr(b: bytes, i: int, what: str) -> tuple[bytes, int]:
    """(content, next index) of a byte string with the shortest head at b[i]."""
    if i >= len(b) or b[i] >> 5 != 2:
        raise DecodeError("envelope: %s must be a byte string" % what)
    n = b[i] & 31
    if n < 24:
        j = i + 1
    else:
        n, j = _arg(b, i)
    if j + n > len(b):
        raise DecodeError("envelope: %s runs past the end" % what)
    return b[j:j + n], j + n


def _arg(b: bytes, i: int) -> tuple[int, int]:
    """(argument, next index) of the CBOR head at b[i], which must be the shortest one
    (RFC 8949 §4.2.1); indefinite lengths and reserved values are refused."""
    ai = b[i] & 31
    if ai < 24:
        return ai, i + 1
    if ai > 27:
        raise DecodeError("indefinite length or reserved head 0x%02x" % b[i])
    n = 1 << (ai - 24)
    if i + 1 + n > len(b):
        raise DecodeError("CBOR head runs past the end")
    v = int.from_bytes(b[i + 1:i + 1 + n], "big")
    if v < (24 if n == 1 else 1 << (4 * n)):
        raise DecodeError("CBOR head not in its shortest form")
    return v, i + 1 + n


def parse_envelope(body: bytes):
    """(kid, seq, protected, payload, tag) of a COSE_Mac0 in this protocol's canonical form.

    A byte-level parser, no CBOR library: its work is linear in the body's (at most 512)
    bytes whatever they hold, and only the exact encoding cose.encode produces passes:
    D1 84 | bstr(A2 01 04 06 bstr(piv)) | A1 04 bstr(kid) | bstr(payload) | 48 tag.
    A wrong alg or extra protected header is an AuthError (downgrade); every other
    departure from that form is a DecodeError.
    """
    b = bytes(body)
    if len(b) < 2 or b[0] != 0xD0 | cose.TAG_MAC0:
        raise DecodeError("not a tagged COSE_Mac0 (canonical form: D1 84 ...)")
    if b[1] != 0x84:
        raise DecodeError("COSE_Mac0 must be an array of 4 (canonical head 84)")
    prot, i = _take_bstr(b, 2, "protected header")
    if not prot.startswith(_PROT_HEAD) or len(prot) < 6 or prot[4] >> 5 != 2 \
            or len(prot) != 5 + (prot[4] & 31):
        raise AuthError("protected header must be {1: 4, 6: piv} (alg downgrade or extra fields)")
    seq = cose.piv_value(prot[5:])
    if i + 2 > len(b) or b[i] != 0xA1 or b[i + 1] != 0x04:
        raise DecodeError("unprotected header must be {4: kid}")
    kid, i = _take_bstr(b, i + 2, "kid")
    if not 1 <= len(kid) <= 16:
        raise AuthError("missing or bad kid")
    payload, i = _take_bstr(b, i, "payload")
    tag, i = _take_bstr(b, i, "MAC tag")
    if len(tag) != cose.TAG_LEN:
        raise AuthError("MAC tag must be %d bytes" % cose.TAG_LEN)
    if i != len(b):
        raise DecodeError("%d bytes after the COSE_Mac0" % (len(b) - i))
    return kid, seq, prot, payload, tag


def check_payload(raw: bytes) -> None:
    """Refuse a payload that is not deterministic CBOR of the kinds the schema has, before
    cbor2 sees it: unsigned ints, byte and text strings, arrays and maps only (no tags,
    so none of cbor2's tag decoders runs; no floats or simple values), definite lengths
    and shortest heads, map keys in strictly ascending bytewise order (so no duplicate
    key: {1: 500, 1: 5} is refused, not stored as 5), nesting at most 4, nothing after
    the item. Linear in the payload's length."""
    b = bytes(raw)
    i = _check_item(b, 0, 0)
    if i != len(b):
        raise DecodeError("%d bytes after the payload" % (len(b) - i))


def _check_item(b: bytes, i: int, depth: int) -> int:
    """check_payload for the item at b[i]: the index after it. Every frame the bridge
    stores passes here, so inside a map or array the common items (an int below 24, one
    byte; a uint with a longer head) are read inline, without a call each: a level
    report's check costs ~3 us instead of ~8. What is accepted is exactly the same."""
    if depth > _MAX_PAYLOAD_DEPTH:
        raise DecodeError("payload nested deeper than %d" % _MAX_PAYLOAD_DEPTH)
    if i >= len(b):
        raise DecodeError("payload truncated")
    ib = b[i]
    major = ib >> 5
    if ib & 31 < 24:
        n, j = ib & 31, i + 1
    else:
        n, j = _arg(b, i)
    if major == 0:
        return j
    if major == 2 or major == 3:
        if j + n > len(b):
            raise DecodeError("payload string runs past the end")
        return j + n
    inline = depth < _MAX_PAYLOAD_DEPTH   # children at depth + 1 are allowed: scalars inline
    end = len(b)
    if major == 4:
        for _ in range(n):
            if inline and j < end and b[j] < 24:
                j += 1
            else:
                j = _check_item(b, j, depth + 1)
        return j
    if major == 5:
        last = None
        for _ in range(n):
            k0 = j
            if inline and j < end and b[j] < 24:
                j += 1
            else:
                j = _check_item(b, j, depth + 1)
            key = b[k0:j]
            if last is not None and (len(last) > len(key) or (len(last) == len(key) and last >= key)):
                raise DecodeError("payload map keys not in deterministic order (or duplicated)")
            last = key
            c = b[j] if inline and j < end else 0xFF
            if c < 24:
                j += 1
            elif c == 24 and j + 1 < end and b[j + 1] >= 24:     # uint 24..255, shortest form
                j += 2
            elif c == 25 and j + 2 < end and b[j + 1]:           # uint 256..65535, shortest form
                j += 3
            elif c < 28:      # any other uint head: _arg checks its length and form
                j = _arg(b, j)[1]
            else:
                j = _check_item(b, j, depth + 1)
        return j
    raise DecodeError("payload may hold no negative ints, tags, floats or simple values")


def _loads(raw: bytes):
    """cbor2 on a payload check_payload passed (nothing in it for cbor2's tag decoders)."""
    check_payload(raw)
    try:
        return cbor2.loads(raw)
    except ProtocolError:
        raise
    except Exception as e:  # cbor2 raises several types for malformed input (bad UTF-8)
        raise DecodeError("bad CBOR: %s" % e) from None


_HMACS: dict = {}   # key -> (inner, outer) SHA-256 with the padded key absorbed (copied per message)


def _hmac_pads(key: bytes):
    """HMAC (RFC 2104 §2) is H(K ^ opad || H(K ^ ipad || text)), K padded with zeros to
    the 64-byte block (hashed first if longer): the two hashes with their 64-byte prefix
    already absorbed are kept per key, and a MAC is two copies and two short updates
    (0.6 us, hmac.HMAC.copy() 1.0 us). tests/host/test_codec_fast.py checks it against
    the hmac module."""
    h = _HMACS.get(key)
    if h is None:
        if len(_HMACS) > 20000:   # bounded: a registry's worth of keys
            _HMACS.clear()
        k = hashlib.sha256(key).digest() if len(key) > 64 else bytes(key)
        k = k + bytes(64 - len(k))
        h = _HMACS[key] = (hashlib.sha256(bytes(x ^ 0x36 for x in k)), hashlib.sha256(bytes(x ^ 0x5C for x in k)))
    return h


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA-256 of data under key (the full 32 bytes)."""
    inner, outer = _hmac_pads(key)
    inner = inner.copy()
    inner.update(data)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.digest()


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


_BSTR_HEAD = [bytes((0x40 | n,)) for n in range(24)] + [bytes((0x58, n)) for n in range(24, 256)]


def _bstr(b: bytes) -> bytes:
    """A CBOR byte string: shortest head, then the bytes."""
    n = len(b)
    return (_BSTR_HEAD[n] if n < 256 else _head(2, n)) + b


_MAC0_CONTEXT = b"\x84\x64MAC0"   # ["MAC0", ...: an array of 4, then the text "MAC0"


_AAD_BSTR = {cose.AAD_UP: _bstr(cose.AAD_UP), cose.AAD_DOWN: _bstr(cose.AAD_DOWN)}


def _mac(key: bytes, prot: bytes, payload: bytes, aad: bytes) -> bytes:
    # MAC_structure (RFC 9052 §6.3) ["MAC0", protected, external_aad, payload], the bytes
    # cbor2.dumps would give, built directly (a cbor2.dumps call costs ~4 us here)
    return hmac_sha256(key, _MAC0_CONTEXT + _bstr(prot) + (_AAD_BSTR.get(aad) or _bstr(aad))
                       + _bstr(payload))[: cose.TAG_LEN]


# COBS for the host, the same bytes as protocol/framing.py's (which must run on
# MicroPython, byte by byte): here with bytes.split and slices, ~5x faster on CPython.
# tests/host/test_codec_cobs.py checks both agree on every input, errors included.
_BYTE = [bytes((i,)) for i in range(256)]


def cobs_encode(data: bytes) -> bytes:
    data = bytes(data)
    if len(data) < 254:   # no block can reach 254 bytes: each is its length + 1, then itself
        return b"".join([_BYTE[len(block) + 1] + block for block in data.split(b"\x00")])
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


def decode_frame(chunk: bytes) -> bytes:
    """protocol.framing.decode_frame with the fast COBS: the body of one frame (the bytes
    between two 0x00 delimiters), FrameError if damaged (too long, bad COBS, short, CRC)."""
    if len(chunk) > framing.MAX_FRAME:
        raise FrameError("frame of %d bytes exceeds %d" % (len(chunk), framing.MAX_FRAME))
    raw = cobs_decode(chunk)
    if len(raw) < 3:
        raise FrameError("frame too short")
    if binascii.crc_hqx(raw[:-2], 0xFFFF) != (raw[-2] << 8 | raw[-1]):
        raise FrameError("bad CRC")
    return raw[:-2]


def encode_frame(body: bytes) -> bytes:
    """protocol.framing.encode_frame with the fast COBS: 00 | COBS(body | crc16) | 00."""
    if len(body) > framing._MAX_BODY:
        raise FrameError("body of %d bytes exceeds %d" % (len(body), framing._MAX_BODY))
    c = binascii.crc_hqx(body, 0xFFFF)
    return b"\x00" + cobs_encode(bytes(body) + bytes((c >> 8, c & 0xFF))) + b"\x00"


def verify_mac(keys, prot: bytes, payload: bytes, tag: bytes, aad: bytes = cose.AAD_UP):
    """The first of `keys` whose MAC matches the tag (constant-time compare), or None."""
    for key in keys:
        if hmac.compare_digest(_mac(key, prot, payload, aad), tag):
            return key
    return None


def _compile_schema() -> dict:
    """type -> ({key: (kind, lo, hi)}, required keys) from messages.FIELDS, for the types
    whose keys are exactly 1..n (all of them today; any other is left to messages.validate)."""
    out = {}
    for t, spec in messages.FIELDS.items():
        fields = [messages.field(spec, i) for i in range(len(spec) // 4)]
        if [f[0] for f in fields] == list(range(1, len(fields) + 1)):
            out[t] = ({k: (kind, lo, hi) for k, kind, lo, hi, _ in fields}, tuple(f[0] for f in fields if f[4]))
    return out


_SCHEMA = _compile_schema()


def validate(obj, allowed=None) -> int:
    """messages.validate(obj, allowed), ~3x faster for a payload that passes: plain ints
    and short texts are checked here against a table made once from the same schema;
    anything else (a list field, an int subclass, any failure) is handed to
    messages.validate, which decides and words the error. So what passes is the same."""
    if type(obj) is dict:
        t = obj.get(0, messages.LEVEL)
        c = _SCHEMA.get(t) if type(t) is int and (allowed is None or t in allowed) else None
        if c is not None and not (t == messages.LEVEL and 0 in obj):
            fields, required = c
            ok = True
            for k in required:
                if k not in obj:
                    ok = False
            for k, v in obj.items():
                if k == 0 and type(k) is int:
                    continue   # the type, checked above
                f = fields.get(k) if type(k) is int else None
                if f is None or (type(v) is not int if f[0] == 0 else (f[0] != 1 or type(v) is not str)) \
                        or not f[1] <= (v if f[0] == 0 else len(v)) <= f[2]:
                    ok = False
                    break
            if ok:
                return t
    return messages.validate(obj, allowed)


def decode_payload(kid: bytes, seq: int, payload: bytes, allowed=schema.UPLINK) -> "Message":
    """A verified payload -> typed Message (DecodeError if it is not canonical or valid)."""
    obj = _loads(payload)
    t = validate(obj, allowed)
    return make_message(kid.decode("ascii", "replace"), seq, t, obj)


def decode_body(body: bytes, key_for, aad: bytes = cose.AAD_UP, allowed=schema.UPLINK) -> "Message":
    """Verify and decode one envelope. key_for(kid: bytes) -> key, a list of keys, or None."""
    kid, seq, prot, payload, tag = parse_envelope(body)
    key = key_for(kid)
    if not key:
        raise AuthError("unknown device %r" % kid.decode("ascii", "replace"))
    if verify_mac([key] if isinstance(key, (bytes, bytearray)) else key, prot, payload, tag, aad) is None:
        raise AuthError("bad MAC")
    return decode_payload(kid, seq, payload, allowed)


def decode_chunk(chunk: bytes, key_for, aad: bytes = cose.AAD_UP, allowed=schema.UPLINK) -> "Message":
    """A chunk between two 0x00 delimiters -> Message (FrameError/AuthError/DecodeError)."""
    return decode_body(framing.decode_frame(chunk), key_for, aad, allowed)


_ACK_PROT = b"\xa2\x01" + _head(0, cose.ALG_HMAC_256_64) + b"\x06"   # {1: alg, 6: piv}, piv follows
_ACK_RAW = b"\xa2\x00" + _head(0, messages.ACK) + b"\x01"            # {0: ACK, 1: seq}, seq follows
_ACK_HEAD = _head(6, cose.TAG_MAC0) + b"\x84"
_TAG_HEAD = _head(2, cose.TAG_LEN)
_KIDS: dict = {}   # device -> its unprotected header {4: kid}, encoded


def encode_ack(key: bytes, device: str, dseq: int, seq: int) -> bytes:
    """encode_downlink(key, device, dseq, {0: ACK, 1: seq}), byte for byte, with the few
    CBOR items of an ack written directly: the bridge sends one per frame it stores.
    tests/host/test_codec_cobs.py compares the two over the whole range of both seqs."""
    if not 0 <= dseq <= cose.MAX_SEQ:
        raise ValueError("sequence number out of range")
    piv = dseq.to_bytes((dseq.bit_length() + 7) // 8 or 1, "big")   # cose.piv_bytes: minimal, 0 -> 00
    prot = _ACK_PROT + _bstr(piv)
    raw = _ACK_RAW + _head(0, seq)
    unprot = _KIDS.get(device)
    if unprot is None:
        if len(_KIDS) > 20000:
            _KIDS.clear()
        unprot = _KIDS[device] = b"\xa1\x04" + _bstr(device.encode())
    env = (_ACK_HEAD + _bstr(prot) + unprot + _bstr(raw) + _TAG_HEAD + _mac(key, prot, raw, cose.AAD_DOWN))
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
_FIELD_NAMES: dict = {}   # Message class -> its field names after device, seq and type


@dataclass
class Message:
    device: str
    seq: int
    type: str = ""

    def fields(self) -> dict:
        names = _FIELD_NAMES.get(type(self))
        if names is None:   # once per class: dataclasses.fields() costs ~3 us a call
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in dc_fields(self)
                                                     if f.name not in ("device", "seq", "type"))
        d = self.__dict__
        return {n: d[n] for n in names if d[n] is not None}

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
