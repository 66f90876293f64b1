"""Regenerate protocol/vectors/vectors.json: python -m protocol.vectors.make_vectors

Each vector is one message as the payload (hex + diagnostic notation) and as the whole
frame made with the test key below. tests/device/mpt_vectors.py checks that MicroPython
reproduces every byte; tests/host/test_vectors.py checks cbor2 and pycose agree.
"""
import json
import os

from protocol import cbor, diag, wire, cose
from protocol import messages as m, schema

KEY = bytes(range(32))  # test key only; never provision it
KID = "tnr-0001"

VECTORS = [
    ("hello", 0, {0: m.HELLO, 1: m.PROTOCOL_VERSION, 2: "0.1.0", 3: "esp32-devkitc", 4: "TN-2420", 5: "Brother TN-2420",
                  6: 3000, 7: 2, 8: ["TN-2420", "TN-2410"], 9: m.CONSENT_AUTOMATIC, 10: 3}),
    ("level_toner_mains", 1, {1: 1234, 2: 41, 3: 45, 4: 658, 5: 60, 6: 9}),
    ("level_propane_battery", 2, {1: 9000, 2: 45, 3: 600, 4: 360, 5: 40, 6: 8, 7: 87}),
    ("level_no_forecast", 3, {1: 3000, 2: 100, 6: 10}),
    ("event_low_soon", 4, {0: m.EVENT, 1: m.EV_LOW_SOON, 2: 1, 4: 160}),
    ("event_order_auto", 5, {0: m.EVENT, 1: m.EV_ORDER_REQUEST, 2: 1, 3: "tnr-0001-e1", 5: m.BY_AUTOMATIC}),
    ("event_order_button", 6, {0: m.EVENT, 1: m.EV_ORDER_REQUEST, 2: 1, 3: "tnr-0001-b7", 5: m.BY_BUTTON}),
    ("event_refill", 7, {0: m.EVENT, 1: m.EV_REFILL, 2: 2, 4: 2950}),
    ("event_sensor_fault", 8, {0: m.EVENT, 1: m.EV_SENSOR_FAULT, 2: 2, 4: 1}),
    ("event_consent_changed", 9, {0: m.EVENT, 1: m.EV_CONSENT_CHANGED, 2: 2, 4: m.CONSENT_FULL}),
    ("usage", 10, {0: m.USAGE, 1: 1766000, 2: 2}),
    ("usage_dropped", 11, {0: m.USAGE, 1: 1767000, 2: 2, 3: 12}),
    ("hello_dropped", 12, {0: m.HELLO, 1: m.PROTOCOL_VERSION, 2: "0.3.0", 3: "virtual", 4: "TN-2420",
                           6: 3000, 7: 2, 9: m.CONSENT_FULL, 10: 4, 11: 12}),
    ("level_large_seq", 1099511627775, {1: 20, 2: 1, 3: 45, 4: 10, 5: 4, 6: 7}),
]
DOWN = [
    ("ack", 1, {0: m.ACK, 1: 10}),
    ("config", 2, {0: m.CONFIG, 1: 600, 2: 3600, 3: 900, 4: 72, 5: 24, 6: 20}),
    ("consent", 3, {0: m.CONSENT, 1: m.CONSENT_REMINDERS}),
    ("order_status", 4, {0: m.ORDER_STATUS, 1: "tnr-0001-e1", 2: schema.ST_SHIPPED}),
    ("time", 5, {0: m.TIME, 1: 1795000000}),
]


def build():
    out = {"key_hex": KEY.hex(), "kid": KID, "vectors": []}
    for direction, items, aad in (("up", VECTORS, cose.AAD_UP), ("down", DOWN, cose.AAD_DOWN)):
        for name, seq, payload in items:
            m.validate(payload)
            raw = cbor.dumps(payload)
            env = cose.encode(KEY, KID, seq, raw, aad)
            frame = wire.pack(KEY, KID, seq, payload, aad)
            out["vectors"].append({
                "name": name, "direction": direction, "seq": seq,
                "payload_hex": raw.hex(), "payload_diag": diag.diag(payload),
                "envelope_hex": env.hex(), "envelope_diag": diag.diag(cbor.loads(env)),
                "frame_hex": frame.hex(),
                "sizes": {"payload": len(raw), "envelope": len(env), "frame": len(frame)},
            })
    return out


PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")

if __name__ == "__main__":
    with open(PATH, "w") as f:
        json.dump(build(), f, indent=1)
        f.write("\n")
    print("wrote", PATH)
