# Message types, integer keys and the schema both sides check. See protocol/SPEC.md.
#
# A payload is a CBOR map with small integer keys. Key 0 is the message type and is left
# out for `level`, the most frequent message (its absence means level), so a periodic
# report fits the 24-byte budget. Every quantity is a fixed-point integer.
from protocol.errors import DecodeError
try:
    from micropython import const
except ImportError:  # CPython: const(x) is just x
    const = int  # type: ignore[assignment]

PROTOCOL_VERSION = 2   # 2: hello 11 and usage 3, messages the outbox dropped

# message types (key 0)
HELLO = 1
LEVEL = 2
EVENT = 3
USAGE = 4
ACK = 16
CONFIG = 17
CONSENT = 18
ORDER_STATUS = 19
TIME = 20
REKEY = 21     # key rotation: new key = HMAC(current key, b"rekey" + nonce)
WEATHER = 22

DOWNLINK = (ACK, CONFIG, CONSENT, ORDER_STATUS, TIME, REKEY, WEATHER)

# event kinds (event key 1)
EV_LOW_SOON = 1
EV_ORDER_REQUEST = 2
EV_REFILL = 3
EV_SENSOR_FAULT = 4
EV_CONSENT_CHANGED = 5

# order triggers (event key 5)
BY_BUTTON = 0
BY_AUTOMATIC = 1

# order status values (order_status key 2), UPLINK and CONSENT_NAMES: protocol/schema.py

# units (hello key 7)
UNITS = ("g", "ml", "pages", "%")

# consent levels: each level includes everything below it
CONSENT_NONE = 0
CONSENT_ORDER_ONLY = 1
CONSENT_REMINDERS = 2
CONSENT_AUTOMATIC = 3
CONSENT_FULL = 4

U = 0x1FFFFFFFFFFFFF  # sanity cap for counters (2**53-1: exact in JSON and doubles)

# The schema both sides check, compact enough for the device's RAM (the field names,
# to_named/from_named and the name tables are host conveniences in protocol/schema.py).
# type -> bytes, 4 per field: key, kind | _REQ, lo, hi; kinds: 0 uint in [lo, hi],
# 1 text of lo..hi chars, 2 list of at most 16 texts of at most hi chars, 3 list of at most
# 16 uints in [lo, hi]. A hi byte >= 0xF0
# indexes _HI. Keys of a type are 1..n in order (schema.py names them by position).
_REQ = const(4)
_HI = (U, (1 << 40) - 1, 86400, 7 * 86400, 24 * 90, 24 * 30, 255)
FIELDS = {
    HELLO: b"\x01\x04\x01\xf6\x02\x05\x00\x20\x03\x05\x00\x20\x04\x05\x00\x20\x05\x01\x00\x30"
           b"\x06\x04\x01\xf0\x07\x04\x00\x03\x08\x02\x00\x20\x09\x04\x00\x04\x0a\x00\x00\xf0"
           b"\x0b\x00\x00\xf0",
    LEVEL: b"\x01\x04\x00\xf0\x02\x04\x00\x64\x03\x00\x00\xf0\x04\x00\x00\xf0\x05\x00\x00\xf0"
           b"\x06\x04\x00\x0a\x07\x00\x00\x64",
    EVENT: b"\x01\x04\x01\x05\x02\x04\x00\xf0\x03\x01\x00\x28\x04\x00\x00\xf0\x05\x00\x00\x01",
    USAGE: b"\x01\x04\x00\xf0\x02\x04\x00\xf0\x03\x00\x00\xf0",
    ACK: b"\x01\x04\x00\xf1",
    CONFIG: b"\x01\x00\x01\xf2\x02\x00\x01\xf3\x03\x00\x01\xf3\x04\x00\x00\xf4\x05\x00\x00\xf5"
            b"\x06\x00\x00\x64\x07\x00\x00\xf5\x08\x00\x01\xf6",
    CONSENT: b"\x01\x04\x00\x04",
    ORDER_STATUS: b"\x01\x05\x01\x28\x02\x04\x01\x04",
    TIME: b"\x01\x04\x00\xf0",
    REKEY: b"\x01\x05\x20\x20",
    WEATHER: b"\x01\x04\x00\xf0\x02\x07\x00\xf6\x03\x03\x00\xf6",
}


def field(spec, i):
    """Field i of a FIELDS entry -> (key, kind, lo, hi, required)."""
    j = 4 * i
    h = spec[j + 3]
    return spec[j], spec[j + 1] & 3, spec[j + 2], _HI[h - 0xF0] if h >= 0xF0 else h, spec[j + 1] >= _REQ


def msg_type(payload):
    return payload.get(0, LEVEL)


def validate(payload, allowed=None):
    """Check a decoded payload against the schema; return its type or raise DecodeError."""
    if not isinstance(payload, dict):
        raise DecodeError("payload must be a map")
    t = payload.get(0, LEVEL)
    if not isinstance(t, int) or isinstance(t, bool):
        raise DecodeError("message type must be an integer")
    if 0 in payload and t == LEVEL:
        raise DecodeError("level must omit key 0")
    spec = FIELDS.get(t)
    if spec is None or (allowed is not None and t not in allowed):
        raise DecodeError("unexpected message type %r" % (t,))
    n = len(spec) // 4
    for k in payload:
        if k != 0 and not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= n):
            raise DecodeError("type %d: unknown key %r" % (t, k))
    for i in range(n):
        k, kind, lo, hi, required = field(spec, i)
        if k not in payload:
            if required:
                raise DecodeError("type %d: missing key %d" % (t, k))
            continue
        v = payload[k]
        if kind >= 2:   # a list of texts (2) or of uints (3); a loop below, not all(genexpr):
            # each generator is one more code object in RAM
            if not isinstance(v, (list, tuple)) or len(v) > 16:
                raise DecodeError("type %d: key %d must be a list of at most 16" % (t, k))
        else:
            v = (v,)
        for x in v:
            if kind == 1 or kind == 2:
                if not isinstance(x, str) or len(x) > hi or len(x) < lo:
                    raise DecodeError("type %d: key %d must be text of %d..%d chars" % (t, k, lo, hi))
            elif not isinstance(x, int) or isinstance(x, bool) or x < lo or x > hi:
                raise DecodeError("type %d: key %d must be an integer in %d..%d" % (t, k, lo, hi))
    return t


def required_consent(payload):
    """The lowest consent level under which this uplink message may be built at all."""
    t = payload.get(0, LEVEL)
    if t == LEVEL:
        return CONSENT_FULL
    if t == USAGE:
        return CONSENT_AUTOMATIC
    if t == HELLO:
        return CONSENT_ORDER_ONLY
    if t == EVENT:
        kind = payload.get(1)
        if kind == EV_CONSENT_CHANGED:
            return CONSENT_NONE  # carries only the new level, so the supplier stops in time
        if kind == EV_ORDER_REQUEST:
            return CONSENT_AUTOMATIC if payload.get(5) == BY_AUTOMATIC else CONSENT_ORDER_ONLY
        return CONSENT_REMINDERS  # low_soon, refill_detected, sensor_fault
    return 99  # downlink types are never built on the device
