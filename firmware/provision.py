"""/provision.json, written by deploy: who this device is and how it reaches the bridge.

  {"device_id": "toner-01",            kid on the wire, prefix of idempotency keys
   "key": "<hex, 16..64 bytes>",       HMAC key shared with the bridge; never printed
   "consent": 0..4,                    the customer's choice (default order-only)
   "transport": {"type": "serial"} | {"type": "udp", "host": ..., "port": ...},
   "wifi": {"ssid": ..., "password": ...}}
"""
import binascii
import json

from protocol import messages as M


def load(path="/provision.json"):
    with open(path) as f:
        p = json.load(f)
    return check(p)


def check(p):
    dev = p.get("device_id")
    if not isinstance(dev, str) or not 1 <= len(dev) <= 16:
        raise ValueError("provision: device_id must be text of 1..16 chars (the kid)")
    try:
        key = binascii.unhexlify(p.get("key", ""))
    except (ValueError, TypeError):
        raise ValueError("provision: key must be hex")
    if not 16 <= len(key) <= 64:
        raise ValueError("provision: key must be 16..64 bytes")
    c = p.get("consent", M.CONSENT_ORDER_ONLY)
    if not isinstance(c, int) or not 0 <= c <= 4:
        raise ValueError("provision: consent must be 0..4")
    p["key_bytes"] = key
    p["consent"] = c
    return p
