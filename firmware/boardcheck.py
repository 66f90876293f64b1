"""Board file validation, on the host at deploy time (and in tests); the device only
reads the validated copy with firmware/board.load(), so none of this is in its RAM.

  validate(cfg) -> cfg                 raises ValueError with a readable reason
  load(path="board.json") -> dict      firmware.board.load + validate

Checked: required sections; sensor type and its pins; every pin exists on the MCU,
is not wired to flash/PSRAM or USB (on an ESP32 with PSRAM, a WROVER module, GPIO 16/17
too), is not UART0's TX/RX (the REPL and the serial transport), is not a strapping pin
(except the button: the BOOT button is one), can drive if it must (ESP32 34-39 are input
only), is on ADC1 for analog (ADC2 is unusable while Wi-Fi runs); the button is on a pin
the chip can wake from deep sleep (ESP32 ext0/ext1: RTC GPIOs 0, 2, 4, 12-15, 25-27,
32-39; ESP32-S3: GPIO 0-21; ESP32-C3: GPIO 0-5); no pin used twice; an analog sensor's
attenuation and calibration inside the ADC's linear range (firmware/sensors/analog.py);
a distance sensor's full and empty readings inside its window (ultrasonic MODELS' blind
zone and range, VL53L0X_MM below); filters, geometry (firmware/shapes.validate),
consumable, transport, power and memory.
"""
from firmware import board, shapes

REQUIRED = ("name", "mcu", "pins", "sensor", "filters", "geometry", "consumable",
            "transport", "power", "memory")
# pin roles per sensor type: i = input, o = output, b = bidirectional, a = ADC input
SENSORS = {"hx711": (("dout", "i"), ("sck", "o")), "vl53l0x": (("sda", "b"), ("scl", "b")),
           "ultrasonic": (("trig", "o"), ("echo", "i")), "analog": (("adc", "a"),), "sim": ()}
# VL53L0X default mode (ST DS11555): a range from 30 mm to 1.2 m indoors
VL53L0X_MM = (30, 1200)
OPTIONAL = {"vl53l0x": (("xshut", "o"),)}   # XSHUT: reset of a wedged sensor, standby
FILTERS = ("median", "ema", "outlier")
# gpio: (lo, hi) inclusive ranges that exist; bad: flash/PSRAM/USB pins
# uart0: the REPL's TX/RX; wake: deep-sleep wake sources (ext0/ext1, or GPIO wake on the C3)
MCUS = {
    "esp32": {"gpio": ((0, 19), (21, 23), (25, 27), (32, 39)), "bad": ((6, 11),),
              "inonly": ((34, 39),), "adc": ((32, 39),), "strap": (0, 2, 5, 12, 15),
              "uart0": (1, 3), "wake": ((0, 0), (2, 2), (4, 4), (12, 15), (25, 27), (32, 39))},
    "esp32s3": {"gpio": ((0, 21), (26, 48)), "bad": ((19, 20), (26, 32)),
                "inonly": (), "adc": ((1, 10),), "strap": (0, 3, 45, 46),
                "uart0": (43, 44), "wake": ((0, 21),)},
    "esp32c3": {"gpio": ((0, 21),), "bad": ((11, 17), (18, 19)),
                "inonly": (), "adc": ((0, 4),), "strap": (2, 8, 9),
                "uart0": (21, 20), "wake": ((0, 5),)},
    "virtual": {"gpio": ((0, 63),), "bad": (), "inonly": (), "adc": ((0, 63),), "strap": (),
                "uart0": (), "wake": ((0, 63),)},
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
    if p in m["uart0"]:
        _err("pin %s: GPIO %d is UART0 (REPL, serial transport) on %s", name, p, mcu)
    if role == "button" and not _inr(p, m["wake"]):
        _err("pin %s: GPIO %d cannot wake %s from deep sleep", name, p, mcu)
    if p in m["strap"] and role != "button":
        _err("pin %s: GPIO %d is a strapping pin on %s", name, p, mcu)
    if role in ("o", "b") and _inr(p, m["inonly"]):
        _err("pin %s: GPIO %d is input-only on %s", name, p, mcu)
    if role == "a" and not _inr(p, m["adc"]):
        _err("pin %s: GPIO %d is not an ADC1 channel on %s", name, p, mcu)
    if p in used:
        _err("pin %s: GPIO %d already used by %s", name, p, used[p])
    used[p] = name


def _adc(s, mcu):
    from firmware.sensors import analog
    try:
        lo, hi = analog.linear_uv(mcu if mcu != "virtual" else "esp32", s.get("atten", 11))
    except ValueError as e:
        _err("sensor.atten: %s", e)
    uv = s.get("calibration", {}).get("uv", (lo, hi))
    for u in uv:
        if not isinstance(u, (int, float)) or not lo <= u <= hi:
            _err("sensor.calibration.uv %r is outside the ADC's linear range %d-%d uV at %s dB on %s",
                 u, lo, hi, s.get("atten", 11), mcu)


def _readings(g):
    """(full, empty) sensor readings of a geometry read as a distance, or None."""
    sh = g.get("shape")
    if sh == "linear":
        return (g["full"], g["empty"]) if "full" in g and "empty" in g else None
    if g.get("input") != "distance":
        return None
    bottom = g["points"][0][0] if sh == "table" else 0
    return g["mount_mm"] - shapes.top(g), g["mount_mm"] - bottom


def _window(s, t, g):
    if t == "ultrasonic":
        from firmware.sensors.ultrasonic import MODELS
        model = s.get("model", "hc-sr04")
        if model not in MODELS:
            _err("sensor.model %r unknown (known: %s)", model, ", ".join(sorted(MODELS)))
        lo, hi = MODELS[model][:2]
        what = model
    else:
        lo, hi = VL53L0X_MM
        what = "vl53l0x"
    lo = max(lo, s.get("min_mm", lo))
    hi = min(hi, s.get("max_mm", hi))
    r = _readings(g)
    if r is None:
        _err("geometry: a %s reads a distance: input must be \"distance\" (with mount_mm)", what)
    full, empty = r
    if full < lo:
        _err("geometry: the full level reads %g mm, inside the %s's blind zone (< %g mm)", full, what, lo)
    if empty > hi:
        _err("geometry: the empty level reads %g mm, beyond the %s's range (> %g mm)", empty, what, hi)


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
    if mcu == "esp32" and cfg["memory"].get("psram"):
        m = dict(m, bad=m["bad"] + ((16, 17),))   # WROVER: PSRAM on GPIO 16/17
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
    for name, role in OPTIONAL.get(t, ()):
        if name in sp:
            _pin(m, mcu, "sensor." + name, sp[name], role, used)
    if not isinstance(s.get("calibration", {}), dict):
        _err("sensor.calibration must be an object")
    if t == "analog":
        _adc(s, mcu)
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
    if t in ("ultrasonic", "vl53l0x"):
        _window(s, t, cfg["geometry"])
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
