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
#
# Every function, method and name costs device RAM (a code object, a qstr), so the
# decoder is plain functions, not a class: the input is a memoryview `b` and the read
# position lives in a one-element list `s` made per loads() call (so concurrent calls on
# the host share nothing). cbor_ext.py reads through the same _take/_item.
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
    if n < 24:
        out.append(major << 5 | n)
        return
    # argument in 1, 2, 4 or 8 bytes (info 24..27); past 8 bytes to_bytes raises
    k = 0
    while k < 3 and n >> (8 << k):
        k += 1
    out.append(major << 5 | 24 + k)
    out.extend(n.to_bytes(1 << k, "big"))


def _encode(out, obj, depth=0):
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
                return out
        _ext().encode(out, obj, depth)
    return out


def dumps(obj):
    """Encode obj as deterministic CBOR."""
    return bytes(_encode(bytearray(), obj))


# encode_into(out, obj): append the encoding of obj to the bytearray out (no intermediate
# copy) and return out
encode_into = _encode


def _take(b, s, n):
    # the next n bytes of b (a memoryview) from position s[0], advancing it; n < 0: the
    # next byte, as an int
    p = s[0]
    if n < 0:
        if p >= len(b):
            raise DecodeError("truncated at offset %d" % p)
        s[0] = p + 1
        return b[p]
    if n > len(b) - p:
        raise DecodeError("truncated: need %d bytes at offset %d" % (n, p))
    s[0] = p + n
    return b[p:p + n]


def _item(b, s, depth):
    if depth > _MAX_DEPTH:
        raise DecodeError("nesting deeper than %d" % _MAX_DEPTH)
    ib = _take(b, s, -1)
    major = ib >> 5
    info = ib & 0x1F
    if major == 7:
        if 20 <= info <= 22:
            return (False, True, None)[info - 20]
        if info == 31:
            return _BREAK
        return _ext().simple(b, s, info)
    if info == 31:
        return _ext().indefinite(b, s, major, depth)
    # the argument (cbor_ext.arg is the same for string chunks)
    n = info
    if info > 23:
        if info > 27:
            raise DecodeError("reserved additional info %d at offset %d" % (info, s[0] - 1))
        n = _take(b, s, -1) if info == 24 else int.from_bytes(_take(b, s, 1 << (info - 24)), "big")
    if major == 0:
        return n
    if major == 1:
        return ~n
    if major == 2:
        return bytes(_take(b, s, n))
    if major == 3:
        # (cbor_ext.text is the same for indefinite-length text)
        n = _take(b, s, n)
        try:
            return str(n, "utf-8")
        except Exception:
            raise DecodeError("invalid UTF-8 in text string")
    if major == 4:
        # every item takes at least one byte: a larger count is a lie
        if n > len(b) - s[0]:
            raise DecodeError("array of %d items exceeds the data" % n)
        out = []
        for _ in range(n):
            v = _item(b, s, depth + 1)
            if v is _BREAK:
                raise DecodeError("break inside a definite-length array")
            out.append(v)
        return out
    if major == 5:
        if 2 * n > len(b) - s[0]:
            raise DecodeError("map of %d pairs exceeds the data" % n)
        d = {}
        for _ in range(n):
            if not _pair(b, s, d, depth):
                raise DecodeError("break inside a definite-length map")
        return d
    return _ext().tag(n, _item(b, s, depth + 1))


def _pair(b, s, d, depth):
    """One key/value pair of a map into d; False when the key is a break (which ends an
    indefinite-length map: cbor_ext uses this too)."""
    k = _item(b, s, depth + 1)
    if k is _BREAK:
        return False
    if not isinstance(k, (int, str, bytes)):
        _ext().check_key(k)
    if k in d:
        raise DecodeError("duplicate map key %r" % (k,))
    v = _item(b, s, depth + 1)
    if v is _BREAK:
        raise DecodeError("break inside a map pair")
    d[k] = v
    return True


def loads(data):
    """Decode exactly one CBOR item from data; raise DecodeError on anything wrong."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("expected bytes, got %s" % type(data).__name__)
    b = memoryview(data)
    s = [0]
    try:
        obj = _item(b, s, 0)
    except DecodeError:
        raise
    except (RuntimeError, MemoryError, OverflowError, ValueError, TypeError, IndexError) as e:
        raise DecodeError("bad CBOR: %s" % e)
    if obj is _BREAK:
        raise DecodeError("unexpected break byte")
    if s[0] != len(b):
        raise DecodeError("%d trailing bytes after the item" % (len(b) - s[0]))
    return obj
