# Message types, integer keys and the schema both sides check. See protocol/SPEC.md.
#
# A payload is a CBOR map with small integer keys. Key 0 is the message type and is left
# out for `level`, the most frequent message (its absence means level), so a periodic
# report fits the 24-byte budget. Every quantity is a fixed-point integer.
from protocol.errors import DecodeError

PROTOCOL_VERSION = 1

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

UPLINK = (HELLO, LEVEL, EVENT, USAGE)
DOWNLINK = (ACK, CONFIG, CONSENT, ORDER_STATUS, TIME)

# event kinds (event key 1)
EV_LOW_SOON = 1
EV_ORDER_REQUEST = 2
EV_REFILL = 3
EV_SENSOR_FAULT = 4
EV_CONSENT_CHANGED = 5

# order triggers (event key 5)
BY_BUTTON = 0
BY_AUTOMATIC = 1

# order status (order_status key 2)
ST_PLACED = 1
ST_SHIPPED = 2
ST_CANCELLED = 3
ST_DELIVERED = 4

# units (hello key 7)
UNITS = ("g", "ml", "pages", "%")

# consent levels: each level includes everything below it
CONSENT_NONE = 0
CONSENT_ORDER_ONLY = 1
CONSENT_REMINDERS = 2
CONSENT_AUTOMATIC = 3
CONSENT_FULL = 4
CONSENT_NAMES = ("none", "order-only", "reminders", "automatic", "full")

U = 0x1FFFFFFFFFFFFF  # sanity cap for counters (2**53-1: exact in JSON and doubles)

# type -> (name, {key: (field name, kind, lo, hi, required)})
# kinds: "u" uint in [lo, hi], "t" text of at most hi bytes, "ts" list of texts
SCHEMA = {
    HELLO: ("hello", {
        1: ("proto", "u", 1, 255, True),
        2: ("fw", "t", 0, 32, True),
        3: ("board", "t", 0, 32, True),
        4: ("sku", "t", 0, 32, True),
        5: ("model", "t", 0, 48, False),
        6: ("capacity", "u", 1, U, True),
        7: ("unit", "u", 0, len(UNITS) - 1, True),
        8: ("refills", "ts", 0, 32, False),
        9: ("consent", "u", 0, 4, True),
        10: ("boot", "u", 0, U, False),
    }),
    LEVEL: ("level", {
        1: ("remaining", "u", 0, U, True),
        2: ("fill_pct", "u", 0, 100, True),
        3: ("rate_per_day", "u", 0, U, False),
        4: ("tte_h", "u", 0, U, False),
        5: ("tte_err_h", "u", 0, U, False),
        6: ("quality", "u", 0, 10, True),
        7: ("battery_pct", "u", 0, 100, False),
    }),
    EVENT: ("event", {
        1: ("kind", "u", 1, 5, True),
        2: ("episode", "u", 0, U, True),
        3: ("key", "t", 0, 40, False),
        4: ("value", "u", 0, U, False),
        5: ("trigger", "u", 0, 1, False),
    }),
    USAGE: ("usage", {
        1: ("consumed_milli", "u", 0, U, True),
        2: ("episode", "u", 0, U, True),
    }),
    ACK: ("ack", {
        1: ("seq", "u", 0, (1 << 40) - 1, True),
    }),
    CONFIG: ("config", {
        1: ("sample_s", "u", 1, 86400, False),
        2: ("report_s", "u", 1, 7 * 86400, False),
        3: ("near_empty_report_s", "u", 1, 7 * 86400, False),
        4: ("lead_time_h", "u", 0, 24 * 90, False),
        5: ("margin_h", "u", 0, 24 * 30, False),
        6: ("low_pct", "u", 0, 100, False),
    }),
    CONSENT: ("consent", {
        1: ("level", "u", 0, 4, True),
    }),
    ORDER_STATUS: ("order_status", {
        1: ("key", "t", 1, 40, True),
        2: ("status", "u", 1, 4, True),
    }),
    TIME: ("time", {
        1: ("unix", "u", 0, U, True),
    }),
}

EVENT_NAMES = {EV_LOW_SOON: "low_soon", EV_ORDER_REQUEST: "order_request", EV_REFILL: "refill_detected",
               EV_SENSOR_FAULT: "sensor_fault", EV_CONSENT_CHANGED: "consent_changed"}
STATUS_NAMES = {ST_PLACED: "placed", ST_SHIPPED: "shipped", ST_CANCELLED: "cancelled", ST_DELIVERED: "delivered"}
TYPE_BY_NAME = {v[0]: k for k, v in SCHEMA.items()}


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
    if t not in SCHEMA or (allowed is not None and t not in allowed):
        raise DecodeError("unexpected message type %r" % (t,))
    fields = SCHEMA[t][1]
    for k in payload:
        if k != 0 and k not in fields:
            raise DecodeError("%s: unknown key %r" % (SCHEMA[t][0], k))
    for k in fields:
        name, kind, lo, hi, required = fields[k]
        if k not in payload:
            if required:
                raise DecodeError("%s: missing %s" % (SCHEMA[t][0], name))
            continue
        v = payload[k]
        if kind == "u":
            if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
                raise DecodeError("%s: %s must be an integer in %d..%d" % (SCHEMA[t][0], name, lo, hi))
        elif kind == "t":
            if not isinstance(v, str) or len(v) > hi or len(v) < lo:
                raise DecodeError("%s: %s must be text of %d..%d chars" % (SCHEMA[t][0], name, lo, hi))
        else:
            if not isinstance(v, (list, tuple)) or len(v) > 16 or not all(isinstance(x, str) and len(x) <= hi for x in v):
                raise DecodeError("%s: %s must be a list of short texts" % (SCHEMA[t][0], name))
    return t


def to_named(payload):
    """{0: 3, 1: 2, ...} -> ("event", {"kind": 2, ...}) for logs, JSON and the monitor."""
    t = payload.get(0, LEVEL)
    name, fields = SCHEMA[t]
    out = {}
    for k in payload:
        if k != 0:
            out[fields[k][0]] = payload[k]
    return name, out


def from_named(name, fields):
    """("config", {"report_s": 60}) -> {0: 17, 2: 60}; raises DecodeError on unknown names."""
    if name not in TYPE_BY_NAME:
        raise DecodeError("unknown message type %r" % (name,))
    t = TYPE_BY_NAME[name]
    keys = {v[0]: k for k, v in SCHEMA[t][1].items()}
    out = {} if t == LEVEL else {0: t}
    for fname in fields:
        if fname not in keys:
            raise DecodeError("%s has no field %r" % (name, fname))
        out[keys[fname]] = fields[fname]
    validate(out)
    return out


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
