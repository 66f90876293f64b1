# CBOR diagnostic notation (RFC 8949 §8) for logs, vectors and the CLI.
from protocol import cbor


def _text(s):
    out = ['"']
    for ch in s:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def diag(obj):
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if obj is None:
        return "null"
    if obj is cbor.UNDEFINED:
        return "undefined"
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, float):
        if obj != obj:
            return "NaN"
        if obj in (float("inf"), float("-inf")):
            return "Infinity" if obj > 0 else "-Infinity"
        return repr(obj)
    if isinstance(obj, (bytes, bytearray)):
        return "h'" + bytes(obj).hex() + "'"
    if isinstance(obj, str):
        return _text(obj)
    if isinstance(obj, (list, tuple)):
        return "[" + ", ".join(diag(x) for x in obj) + "]"
    if isinstance(obj, dict):
        # deterministic order: by encoded key bytes, as on the wire
        keys = sorted(obj, key=lambda k: cbor.dumps(k))
        return "{" + ", ".join(diag(k) + ": " + diag(obj[k]) for k in keys) + "}"
    if isinstance(obj, cbor.Tag):
        return "%d(%s)" % (obj.tag, diag(obj.value))
    if isinstance(obj, cbor.Simple):
        return "simple(%d)" % obj.value
    return repr(obj)
