# The rarely used half of protocol/cbor.py, imported on first use: floats (shortest of
# half/single/double), bignums (tags 2/3), other tags, simple values, `undefined`, maps
# with keys other than unsigned ints (sorted by encoded bytes, RFC 8949 §4.2.1) and
# indefinite lengths. Protocol messages need none of it, so a device never loads it unless
# a peer sends such an item (which the message layer then rejects).
import struct

from protocol.cbor import _BREAK, _encode, _head, _item, _pair, _take
from protocol.errors import DecodeError

_BIG = 0x10000000000000000


class Tag:
    """A tagged item (major type 6) that this codec has no special meaning for."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and other.tag == self.tag and other.value == self.value

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


class Simple:
    """An unassigned simple value (major type 7, not false/true/null/undefined)."""

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Simple) and other.value == self.value

    def __hash__(self):
        return hash(self.value)

    def __repr__(self):
        return "Simple(%d)" % self.value


class _Undefined:
    def __repr__(self):
        return "undefined"


UNDEFINED = _Undefined()


# ---------------------------------------------------------------- encoder

def _half_bits(x):
    # IEEE 754 binary16 bits for x if x survives the round trip exactly, else None.
    # Written by hand: MicroPython's struct has no 'e' format.
    if x != x:
        return 0x7E00
    if x in (float("inf"), float("-inf")):
        return 0x7C00 if x > 0 else 0xFC00
    sign = 0x8000 if (x < 0 or (x == 0 and str(x)[0] == "-")) else 0
    a = -x if x < 0 else x
    if a == 0:
        return sign
    # find exponent e with 2**e <= a < 2**(e+1)
    e = 0
    m = a
    while m >= 2.0:
        m /= 2.0
        e += 1
    while m < 1.0:
        m *= 2.0
        e -= 1
    if e > 15:
        return None
    if e >= -14:
        frac = (m - 1.0) * 1024
        if frac != int(frac):
            return None
        return sign | ((e + 15) << 10) | int(frac)
    frac = a * (1 << 24)  # subnormal: a = frac * 2**-24
    if frac != int(frac) or frac >= 1024:
        return None
    return sign | int(frac)


def _encode_float(out, x):
    h = _half_bits(x)
    if h is not None:
        out.append(0xF9)
        out.extend(struct.pack(">H", h))
        return
    try:
        f = struct.pack(">f", x)
    except OverflowError:  # CPython refuses; MicroPython gives inf, caught below
        f = None
    if f is not None and struct.unpack(">f", f)[0] == x:
        out.append(0xFA)
        out.extend(f)
        return
    out.append(0xFB)
    out.extend(struct.pack(">d", x))


def _bignum(out, tag, n):
    raw = bytearray()
    while n:
        raw.append(n & 0xFF)
        n >>= 8
    raw = bytes(reversed(raw))
    _head(out, 6, tag)
    _head(out, 2, len(raw))
    out.extend(raw)


def encode(out, obj, depth):
    """What cbor._encode leaves over."""
    if obj is UNDEFINED:
        out.append(0xF7)
    elif isinstance(obj, int):
        if obj >= 0:
            _bignum(out, 2, obj)
        else:
            _bignum(out, 3, -1 - obj)
    elif isinstance(obj, dict):
        _head(out, 5, len(obj))
        items = []
        for k in obj:
            kb = bytearray()
            _encode(kb, k, depth + 1)
            items.append((bytes(kb), k))
        items.sort(key=lambda kv: kv[0])  # bytewise lexicographic order of encoded keys
        prev = None
        for kb, k in items:
            if kb == prev:
                raise DecodeError("duplicate map key %r" % (k,))
            prev = kb
            out.extend(kb)
            _encode(out, obj[k], depth + 1)
    elif isinstance(obj, float):
        _encode_float(out, obj)
    elif isinstance(obj, Tag):
        _head(out, 6, obj.tag)
        _encode(out, obj.value, depth + 1)
    elif isinstance(obj, Simple):
        if obj.value < 24:
            out.append(0xE0 | obj.value)
        else:
            out.append(0xF8)
            out.append(obj.value)
    else:
        raise TypeError("cannot encode %s as CBOR" % type(obj).__name__)


# ---------------------------------------------------------------- decoder

def _half_to_float(h):
    sign = -1.0 if h & 0x8000 else 1.0
    exp = (h >> 10) & 0x1F
    frac = h & 0x3FF
    if exp == 0:
        return sign * frac * (2.0 ** -24)
    if exp == 31:
        return float("nan") if frac else sign * float("inf")
    return sign * (1024 + frac) * (2.0 ** (exp - 25))


def tag(n, value):
    if n == 2 or n == 3:
        if not isinstance(value, bytes):
            raise DecodeError("bignum tag %d needs a byte string" % n)
        v = 0
        for b in value:
            v = (v << 8) | b
        return v if n == 2 else -1 - v
    return Tag(n, value)


def check_key(k):
    if isinstance(k, (list, dict)):
        raise DecodeError("map key of type %s is not supported" % type(k).__name__)
    if isinstance(k, Tag):
        raise DecodeError("tagged map keys are not supported")


# The decoder state is cbor.py's: b, a memoryview of the input, and s, a one-element list
# holding the read position. arg/text/pair repeat what cbor._item does inline for the
# definite-length forms (one copy here costs no device RAM until this module loads).

def arg(b, s, info):
    if info < 24:
        return info
    if info == 24:
        return _take(b, s, -1)
    if info < 28:
        return int.from_bytes(_take(b, s, 1 << (info - 24)), "big")
    raise DecodeError("reserved additional info %d at offset %d" % (info, s[0] - 1))


def text(raw):
    try:
        return str(raw, "utf-8")
    except Exception:
        raise DecodeError("invalid UTF-8 in text string")


def simple(b, s, info):
    """Major type 7 other than false/true/null/break."""
    if info == 23:
        return UNDEFINED
    if info < 20:
        return Simple(info)
    if info == 24:
        v = _take(b, s, -1)
        if v < 32:
            raise DecodeError("simple value %d in two-byte form is not well-formed" % v)
        return Simple(v)
    if info == 25:
        return _half_to_float(struct.unpack(">H", _take(b, s, 2))[0])
    if info == 26:
        return struct.unpack(">f", _take(b, s, 4))[0]
    if info == 27:
        return struct.unpack(">d", _take(b, s, 8))[0]
    raise DecodeError("reserved simple value %d" % info)


def indefinite(b, s, major, depth):
    if major in (0, 1, 6):
        raise DecodeError("indefinite length not allowed for major type %d" % major)
    if major == 2 or major == 3:
        parts = []
        while True:
            ib = _take(b, s, -1)
            if ib == 0xFF:
                break
            if ib >> 5 != major or ib & 0x1F == 31:
                raise DecodeError("bad chunk in indefinite-length string")
            parts.append(bytes(_take(b, s, arg(b, s, ib & 0x1F))))
        raw = b"".join(parts)
        return raw if major == 2 else text(raw)
    if major == 4:
        out = []
        while True:
            v = _item(b, s, depth + 1)
            if v is _BREAK:
                return out
            out.append(v)
    d = {}
    while _pair(b, s, d, depth):
        pass
    return d
