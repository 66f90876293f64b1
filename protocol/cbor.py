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
#
# RAM: this module holds only what protocol messages use (unsigned-int-keyed maps of ints,
# byte and text strings, arrays, true/false/null). Floats, bignums, tags, simple values,
# `undefined`, other map keys and indefinite lengths live in protocol/cbor_ext.py, imported
# on first use, so a device that never meets them never pays for their code. Tag, Simple
# and UNDEFINED are still reachable as cbor.Tag etc. (module __getattr__).
import struct
try:
    from micropython import const
except ImportError:  # CPython: const(x) is just x
    const = int  # type: ignore[assignment]

from protocol.errors import DecodeError

_MAX_DEPTH = const(16)
_BREAK = object()


def _ext():
    from protocol import cbor_ext
    return cbor_ext


def __getattr__(name):
    if name in ("Tag", "Simple", "UNDEFINED"):
        return getattr(_ext(), name)
    raise AttributeError(name)


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
    elif not n >> 32:  # (no 32-bit literals: on a 32-bit port each is a heap long int)
        out.append(mt | 26)
        out.extend(struct.pack(">I", n))
    else:
        out.append(mt | 27)
        out.extend(struct.pack(">Q", n))


def _encode(out, obj, depth):
    if depth > _MAX_DEPTH:
        raise DecodeError("nesting deeper than %d" % _MAX_DEPTH)
    if obj is False:
        out.append(0xF4)
    elif obj is True:
        out.append(0xF5)
    elif obj is None:
        out.append(0xF6)
    elif isinstance(obj, int) and not (obj if obj >= 0 else ~obj) >> 64:
        if obj >= 0:
            _head(out, 0, obj)
        else:
            _head(out, 1, ~obj)
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
    else:
        if isinstance(obj, dict):
            # every protocol message has unsigned int keys; for them the encoded-bytes
            # order of RFC 8949 §4.2.1 is plain numeric order (a loop, not all(genexpr):
            # each generator is one more code object in RAM)
            for k in obj:
                if not isinstance(k, int) or isinstance(k, bool) or k < 0 or k >> 64:
                    break
            else:
                _head(out, 5, len(obj))
                for k in sorted(obj):
                    _head(out, 0, k)
                    _encode(out, obj[k], depth + 1)
                return
        _ext().encode(out, obj, depth)


def dumps(obj):
    """Encode obj as deterministic CBOR."""
    out = bytearray()
    _encode(out, obj, 0)
    return bytes(out)


def encode_into(out, obj):
    """Append the encoding of obj to the bytearray out (no intermediate copy)."""
    _encode(out, obj, 0)
    return out


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
            return struct.unpack(">Q", self.take(8))[0]
        raise DecodeError("reserved additional info %d at offset %d" % (info, self.pos - 1))

    def item(self, depth):
        if depth > _MAX_DEPTH:
            raise DecodeError("nesting deeper than %d" % _MAX_DEPTH)
        ib = self.byte()
        major = ib >> 5
        info = ib & 0x1F
        if major == 7:
            if 20 <= info <= 22:
                return (False, True, None)[info - 20]
            if info == 31:
                return _BREAK
            return _ext().simple(self, info)
        if info == 31:
            return _ext().indefinite(self, major, depth)
        n = self.arg(info)
        if major == 0:
            return n
        if major == 1:
            return ~n
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
        return _ext().tag(n, self.item(depth + 1))

    def pair(self, d, depth):
        k = self.item(depth + 1)
        if k is _BREAK:
            return False
        if not isinstance(k, (int, str, bytes)):
            _ext().check_key(k)
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
