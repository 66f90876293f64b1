# Small CBOR codec (RFC 8949) that runs unchanged on MicroPython and CPython.
#
# dumps(obj) -> bytes   deterministic encoding (RFC 8949 §4.2.1): shortest heads, map
#                       keys sorted by their encoded bytes, floats in the shortest width
#                       that keeps the value.
# loads(data) -> obj    accepts any well-formed CBOR within the limits below; anything
#                       else raises DecodeError (a ProtocolError / ValueError).
#
# Hostile input is bounded: nesting depth, a declared length never larger than the bytes
# left (so a 4 GB length costs nothing), no trailing bytes, no duplicate map keys.
import struct

from protocol.errors import DecodeError

MAX_DEPTH = 16


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
_BREAK = object()


# ---------------------------------------------------------------- encoder

def _head(out, major, n):
    mt = major << 5
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(mt | 25)
        out.extend(struct.pack(">H", n))
    elif n < 0x100000000:
        out.append(mt | 26)
        out.extend(struct.pack(">I", n))
    else:
        out.append(mt | 27)
        out.extend(struct.pack(">II", n >> 32, n & 0xFFFFFFFF))


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


def _encode(out, obj, depth):
    if depth > MAX_DEPTH:
        raise DecodeError("nesting deeper than %d" % MAX_DEPTH)
    if obj is False:
        out.append(0xF4)
    elif obj is True:
        out.append(0xF5)
    elif obj is None:
        out.append(0xF6)
    elif obj is UNDEFINED:
        out.append(0xF7)
    elif isinstance(obj, int):
        if obj >= 0:
            if obj < 0x10000000000000000:
                _head(out, 0, obj)
            else:
                _bignum(out, 2, obj)
        else:
            n = -1 - obj
            if n < 0x10000000000000000:
                _head(out, 1, n)
            else:
                _bignum(out, 3, n)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _head(out, 2, len(obj))
        out.extend(obj)
    elif isinstance(obj, str):
        b = obj.encode()
        _head(out, 3, len(b))
        out.extend(b)
    elif isinstance(obj, (list, tuple)):
        _head(out, 4, len(obj))
        for item in obj:
            _encode(out, item, depth + 1)
    elif isinstance(obj, dict):
        _head(out, 5, len(obj))
        keys = list(obj)
        if all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 0x10000000000000000 for k in keys):
            # fast path (every protocol message): for unsigned ints the encoded-bytes
            # order of RFC 8949 §4.2.1 is plain numeric order
            keys.sort()
            for k in keys:
                _head(out, 0, k)
                _encode(out, obj[k], depth + 1)
            return
        items = []
        for k in keys:
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


def _bignum(out, tag, n):
    raw = bytearray()
    while n:
        raw.append(n & 0xFF)
        n >>= 8
    raw = bytes(reversed(raw))
    _head(out, 6, tag)
    _head(out, 2, len(raw))
    out.extend(raw)


def dumps(obj):
    """Encode obj as deterministic CBOR."""
    out = bytearray()
    _encode(out, obj, 0)
    return bytes(out)


def encode_into(out, obj):
    """Append the encoding of obj to the bytearray out (no intermediate copy)."""
    _encode(out, obj, 0)
    return out


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


class _Decoder:
    def __init__(self, data):
        self.buf = memoryview(data)
        self.pos = 0
        self.end = len(data)

    def take(self, n):
        p = self.pos
        if n > self.end - p:
            raise DecodeError("truncated: need %d bytes at offset %d" % (n, p))
        self.pos = p + n
        return self.buf[p:p + n]

    def byte(self):
        p = self.pos
        if p >= self.end:
            raise DecodeError("truncated at offset %d" % p)
        self.pos = p + 1
        return self.buf[p]

    def arg(self, info):
        if info < 24:
            return info
        if info == 24:
            return self.byte()
        if info == 25:
            return struct.unpack(">H", self.take(2))[0]
        if info == 26:
            return struct.unpack(">I", self.take(4))[0]
        if info == 27:
            hi, lo = struct.unpack(">II", self.take(8))
            return (hi << 32) | lo
        raise DecodeError("reserved additional info %d at offset %d" % (info, self.pos - 1))

    def item(self, depth):
        if depth > MAX_DEPTH:
            raise DecodeError("nesting deeper than %d" % MAX_DEPTH)
        ib = self.byte()
        major = ib >> 5
        info = ib & 0x1F
        if major == 7:
            return self.simple(info)
        if info == 31:
            return self.indefinite(major, depth)
        n = self.arg(info)
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major == 2:
            return bytes(self.take(n))
        if major == 3:
            return self.text(self.take(n))
        if major == 4:
            # every item takes at least one byte: a larger count is a lie
            if n > self.end - self.pos:
                raise DecodeError("array of %d items exceeds the data" % n)
            out = []
            for _ in range(n):
                v = self.item(depth + 1)
                if v is _BREAK:
                    raise DecodeError("break inside a definite-length array")
                out.append(v)
            return out
        if major == 5:
            if 2 * n > self.end - self.pos:
                raise DecodeError("map of %d pairs exceeds the data" % n)
            d = {}
            for _ in range(n):
                if not self.pair(d, depth):
                    raise DecodeError("break inside a definite-length map")
            return d
        # major 6: tag
        value = self.item(depth + 1)
        if n == 2 or n == 3:
            if not isinstance(value, bytes):
                raise DecodeError("bignum tag %d needs a byte string" % n)
            v = 0
            for b in value:
                v = (v << 8) | b
            return v if n == 2 else -1 - v
        return Tag(n, value)

    def pair(self, d, depth):
        k = self.item(depth + 1)
        if k is _BREAK:
            return False
        if isinstance(k, (list, dict)):
            raise DecodeError("map key of type %s is not supported" % type(k).__name__)
        if isinstance(k, Tag):
            raise DecodeError("tagged map keys are not supported")
        if k in d:
            raise DecodeError("duplicate map key %r" % (k,))
        v = self.item(depth + 1)
        if v is _BREAK:
            raise DecodeError("break inside a map pair")
        d[k] = v
        return True

    def text(self, raw):
        try:
            return bytes(raw).decode("utf-8")
        except Exception:
            raise DecodeError("invalid UTF-8 in text string")

    def simple(self, info):
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info == 23:
            return UNDEFINED
        if info < 20:
            return Simple(info)
        if info == 24:
            v = self.byte()
            if v < 32:
                raise DecodeError("simple value %d in two-byte form is not well-formed" % v)
            return Simple(v)
        if info == 25:
            return _half_to_float(struct.unpack(">H", self.take(2))[0])
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31:
            return _BREAK
        raise DecodeError("reserved simple value %d" % info)

    def indefinite(self, major, depth):
        if major in (0, 1, 6):
            raise DecodeError("indefinite length not allowed for major type %d" % major)
        if major == 2 or major == 3:
            parts = []
            while True:
                ib = self.byte()
                if ib == 0xFF:
                    break
                if ib >> 5 != major or ib & 0x1F == 31:
                    raise DecodeError("bad chunk in indefinite-length string")
                parts.append(bytes(self.take(self.arg(ib & 0x1F))))
            raw = b"".join(parts)
            return raw if major == 2 else self.text(raw)
        if major == 4:
            out = []
            while True:
                v = self.item(depth + 1)
                if v is _BREAK:
                    return out
                out.append(v)
        d = {}
        while self.pair(d, depth):
            pass
        return d


def loads(data):
    """Decode exactly one CBOR item from data; raise DecodeError on anything wrong."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("expected bytes, got %s" % type(data).__name__)
    dec = _Decoder(data)
    try:
        obj = dec.item(0)
    except DecodeError:
        raise
    except (RuntimeError, MemoryError, OverflowError, ValueError, TypeError, IndexError) as e:
        raise DecodeError("bad CBOR: %s" % e)
    if obj is _BREAK:
        raise DecodeError("unexpected break byte")
    if dec.pos != dec.end:
        raise DecodeError("%d trailing bytes after the item" % (dec.end - dec.pos))
    return obj
