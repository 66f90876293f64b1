"""Board file validation, on the host at deploy time (and in tests); the device only
reads the validated copy with firmware/board.load(), so none of this is in its RAM.

  validate(cfg) -> cfg                 raises ValueError with a readable reason
  load(path="board.json") -> dict      firmware.board.load + validate

Checked: required sections; sensor type and its pins; every pin exists on the MCU,
is not wired to flash/PSRAM or USB, is not a strapping pin (except the button:
the BOOT button is one), can drive if it must (ESP32 34-39 are input only), is on
ADC1 for analog (ADC2 is unusable while Wi-Fi runs); no pin used twice; filters,
geometry (firmware/shapes.validate), consumable, transport, power and memory.
"""
from firmware import board, shapes

REQUIRED = ("name", "mcu", "pins", "sensor", "filters", "geometry", "consumable",
            "transport", "power", "memory")
# pin roles per sensor type: i = input, o = output, b = bidirectional, a = ADC input
SENSORS = {"hx711": (("dout", "i"), ("sck", "o")), "vl53l0x": (("sda", "b"), ("scl", "b")),
           "ultrasonic": (("trig", "o"), ("echo", "i")), "analog": (("adc", "a"),), "sim": ()}
FILTERS = ("median", "ema", "outlier")
# gpio: (lo, hi) inclusive ranges that exist; bad: flash/PSRAM/USB pins
MCUS = {
    "esp32": {"gpio": ((0, 19), (21, 23), (25, 27), (32, 39)), "bad": ((6, 11),),
              "inonly": ((34, 39),), "adc": ((32, 39),), "strap": (0, 2, 5, 12, 15)},
    "esp32s3": {"gpio": ((0, 21), (26, 48)), "bad": ((19, 20), (26, 32)),
                "inonly": (), "adc": ((1, 10),), "strap": (0, 3, 45, 46)},
    "esp32c3": {"gpio": ((0, 21),), "bad": ((11, 17), (18, 19)),
                "inonly": (), "adc": ((0, 4),), "strap": (2, 8, 9)},
    "virtual": {"gpio": ((0, 63),), "bad": (), "inonly": (), "adc": ((0, 63),), "strap": ()},
}


def _err(msg, *a):
    raise ValueError("board: " + (msg % a if a else msg))


def _inr(p, ranges):
    for lo, hi in ranges:
        if lo <= p <= hi:
            return True
    return False


def _num(d, k, where, lo=0):
    v = d.get(k) if isinstance(d, dict) else None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= lo:
        _err("%s.%s must be a number > %s", where, k, lo)
    return v


def _pin(m, mcu, name, p, role, used):
    if not isinstance(p, int) or isinstance(p, bool):
        _err("pin %s must be an integer GPIO, not %r", name, p)
    if not _inr(p, m["gpio"]):
        _err("pin %s: GPIO %d does not exist on %s", name, p, mcu)
    if _inr(p, m["bad"]):
        _err("pin %s: GPIO %d is wired to flash/PSRAM/USB on %s", name, p, mcu)
    if p in m["strap"] and role != "button":
        _err("pin %s: GPIO %d is a strapping pin on %s", name, p, mcu)
    if role in ("o", "b") and _inr(p, m["inonly"]):
        _err("pin %s: GPIO %d is input-only on %s", name, p, mcu)
    if role == "a" and not _inr(p, m["adc"]):
        _err("pin %s: GPIO %d is not an ADC1 channel on %s", name, p, mcu)
    if p in used:
        _err("pin %s: GPIO %d already used by %s", name, p, used[p])
    used[p] = name


def validate(cfg):
    if not isinstance(cfg, dict):
        _err("top level must be an object")
    for k in REQUIRED:
        if k not in cfg:
            _err("missing field %r", k)
    mcu = cfg["mcu"]
    m = MCUS.get(mcu)
    if m is None:
        _err("unknown mcu %r (known: %s)", mcu, ", ".join(sorted(MCUS)))
    if mcu == "esp32s3" and cfg["memory"].get("psram") == "octal":
        m = dict(m, bad=m["bad"] + ((33, 37),))   # octal PSRAM takes GPIO 33-37
    used = {}
    s = cfg["sensor"]
    t = s.get("type") if isinstance(s, dict) else None
    if t not in SENSORS:
        _err("unknown sensor type %r (known: %s)", t, ", ".join(sorted(SENSORS)))
    if t == "sim" and mcu != "virtual":
        _err("sensor type sim needs mcu virtual")
    sp = s.get("pins", {})
    for name, role in SENSORS[t]:
        if name not in sp:
            _err("sensor %s needs pins.%s", t, name)
        _pin(m, mcu, "sensor." + name, sp[name], role, used)
    if not isinstance(s.get("calibration", {}), dict):
        _err("sensor.calibration must be an object")
    for name, p in cfg["pins"].items():
        _pin(m, mcu, name, p, "button" if name == "button" else "b", used)
    ser = cfg["transport"].get("serial")
    if not ser and not cfg["transport"].get("wifi"):
        _err("transport needs serial and/or wifi")
    if ser:
        _num(ser, "baud", "transport.serial")
        for k in ("tx", "rx"):
            if k in ser:
                _pin(m, mcu, "serial." + k, ser[k], "o" if k == "tx" else "i", used)
    fl = cfg["filters"]
    if not isinstance(fl, list):
        _err("filters must be a list")
    for f in fl:
        if f.get("type") not in FILTERS:
            _err("unknown filter type %r", f.get("type"))
        if f["type"] == "ema" and not 0 < f.get("alpha", 0.3) <= 1:
            _err("ema alpha must be in (0, 1]")
    c = cfg["consumable"]
    _num(c, "capacity", "consumable")
    if c.get("unit") not in shapes.UNITS:
        _err("consumable.unit must be one of %s", ", ".join(shapes.UNITS))
    if not c.get("sku"):
        _err("consumable.sku missing")
    shapes.validate(cfg["geometry"])
    pw = cfg["power"]
    if pw.get("mode") not in ("always_on", "deep_sleep"):
        _err("power.mode must be always_on or deep_sleep")
    if _num(pw, "report_s", "power") < _num(pw, "sample_s", "power"):
        _err("power.report_s must be >= sample_s")
    _num(cfg["memory"], "heap_budget", "memory")
    if cfg["memory"].get("source_lines", True) not in (True, False):
        _err("memory.source_lines must be true or false (line numbers in the deployed .mpy)")
    if "world" in cfg and not isinstance(cfg["world"], dict):
        _err("world must be an object")
    return cfg


def load(path="board.json"):
    return validate(board.load(path))
