# Host-side names for the message schema of protocol/messages.py: type and field names,
# event and order-status names, and the named <-> integer-keyed conversions used by the
# bridge, the CLI tools, logs and JSON. Kept out of protocol/messages.py so the device
# (which only needs the integer schema) does not carry the names in RAM. Runs on
# MicroPython too.
from protocol import messages as M
from protocol.errors import DecodeError

# names the device never uses (each would be a qstr in its RAM)
UPLINK = (M.HELLO, M.LEVEL, M.EVENT, M.USAGE)
ST_PLACED = 1         # order status (order_status key 2)
ST_SHIPPED = 2
ST_CANCELLED = 3
ST_DELIVERED = 4
CONSENT_NAMES = ("none", "order-only", "reminders", "automatic", "full")

# type -> (name, field names of keys 1..n)
NAMES = {
    M.HELLO: ("hello", ("proto", "fw", "board", "sku", "model", "capacity", "unit", "refills",
                        "consent", "boot", "dropped")),
    M.LEVEL: ("level", ("remaining", "fill_pct", "rate_per_day", "tte_h", "tte_err_h", "quality",
                        "battery_pct")),
    M.EVENT: ("event", ("kind", "episode", "key", "value", "trigger")),
    M.USAGE: ("usage", ("consumed_milli", "episode", "dropped")),
    M.ACK: ("ack", ("seq",)),
    M.CONFIG: ("config", ("sample_s", "report_s", "near_empty_report_s", "lead_time_h", "margin_h",
                          "low_pct", "lead_sd_h", "risk_pm")),
    M.CONSENT: ("consent", ("level",)),
    M.ORDER_STATUS: ("order_status", ("key", "status")),
    M.TIME: ("time", ("unix",)),
    M.REKEY: ("rekey", ("nonce",)),
    M.WEATHER: ("weather", ("day", "daily", "normals")),
}
_KINDS = ("u", "t", "ts", "us")


def _schema():
    out = {}
    for t, (name, fnames) in NAMES.items():
        spec = M.FIELDS[t]
        fields = {}
        for i in range(len(spec) // 4):
            k, kind, lo, hi, req = M.field(spec, i)
            fields[k] = (fnames[i], _KINDS[kind], lo, hi, req)
        out[t] = (name, fields)
    return out


# type -> (name, {key: (field name, kind, lo, hi, required)})
# kinds: "u" uint in [lo, hi], "t" text of at most hi bytes, "ts" list of texts,
# "us" list of uints in [lo, hi] (weather: temperatures as (C + 60) * 2)
SCHEMA = _schema()
EVENT_NAMES = {M.EV_LOW_SOON: "low_soon", M.EV_ORDER_REQUEST: "order_request", M.EV_REFILL: "refill_detected",
               M.EV_SENSOR_FAULT: "sensor_fault", M.EV_CONSENT_CHANGED: "consent_changed"}
STATUS_NAMES = {ST_PLACED: "placed", ST_SHIPPED: "shipped", ST_CANCELLED: "cancelled",
                ST_DELIVERED: "delivered"}
TYPE_BY_NAME = {v[0]: k for k, v in SCHEMA.items()}


def to_named(payload):
    """{0: 3, 1: 2, ...} -> ("event", {"kind": 2, ...}) for logs, JSON and the monitor."""
    t = payload.get(0, M.LEVEL)
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
    out = {} if t == M.LEVEL else {0: t}
    for fname in fields:
        if fname not in keys:
            raise DecodeError("%s has no field %r" % (name, fname))
        out[keys[fname]] = fields[fname]
    M.validate(out)
    return out
