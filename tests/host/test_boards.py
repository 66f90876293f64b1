"""Every board file validates on CPython; the validator rejects broken ones clearly."""
import copy
import json
from pathlib import Path

import pytest

from firmware import boardcheck as board, geometry

BOARDS = sorted((Path(__file__).resolve().parents[2] / "boards").glob("*.json"))


def _load(name):
    return json.loads((BOARDS[0].parent / name).read_text())


def test_there_are_four_boards():
    names = {p.stem for p in BOARDS}
    assert {"esp32-devkitc", "esp32-s3-devkitc-1", "esp32-c3-devkitm-1", "virtual"} <= names


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_board_file_valid(path):
    cfg = board.load(str(path))
    assert cfg["name"] == path.stem
    g = geometry.from_board(cfg)
    assert g.quantity(None) is None
    assert cfg["power"]["report_s"] >= cfg["power"]["sample_s"]
    for r in cfg["consumable"]["refills"]:
        assert r["sku"] and r["quantity"] > 0


def test_virtual_world_matches_consumable():
    cfg = _load("virtual.json")
    assert cfg["world"]["capacity"] == cfg["consumable"]["capacity"] == 3000
    assert cfg["sensor"]["type"] == "sim"


def _mut(name, fn):
    cfg = copy.deepcopy(_load(name))
    fn(cfg)
    return cfg


def _set(path, value):
    def f(cfg):
        d = cfg
        for k in path[:-1]:
            d = d[k]
        if value is KeyError:
            del d[path[-1]]
        else:
            d[path[-1]] = value
    return f


BAD = [
    ("esp32-devkitc.json", _set(["sensor", "type"], "lidar"), "unknown sensor type"),
    ("esp32-devkitc.json", _set(["sensor", "pins", "dout"], 40), "does not exist"),
    ("esp32-devkitc.json", _set(["sensor", "pins", "sck"], 7), "flash"),
    ("esp32-devkitc.json", _set(["sensor", "pins", "sck"], 35), "input-only"),
    ("esp32-devkitc.json", _set(["sensor", "pins", "sck"], 16), "already used"),
    ("esp32-s3-devkitc-1.json", _set(["pins", "button"], 8), "already used"),
    ("esp32-devkitc.json", _set(["sensor", "pins", "dout"], 12), "strapping"),
    ("esp32-devkitc.json", _set(["geometry"], KeyError), "missing field 'geometry'"),
    ("esp32-devkitc.json", _set(["consumable", "unit"], "litres"), "consumable.unit"),
    ("esp32-devkitc.json", _set(["consumable", "capacity"], 0), "capacity"),
    ("esp32-devkitc.json", _set(["power", "mode"], "turbo"), "power.mode"),
    ("esp32-devkitc.json", _set(["power", "report_s"], 1), "report_s"),
    ("esp32-devkitc.json", _set(["memory", "heap_budget"], -5), "heap_budget"),
    ("esp32-devkitc.json", _set(["filters"], [{"type": "kalman"}]), "filter type"),
    ("esp32-devkitc.json", _set(["mcu"], "esp8266"), "unknown mcu"),
    ("esp32-devkitc.json", _set(["sensor", "pins", "dout"], "16"), "integer"),
    ("esp32-s3-devkitc-1.json", _set(["sensor", "pins", "sda"], 35), "flash/PSRAM"),
    ("esp32-s3-devkitc-1.json", _set(["geometry", "diameter_mm"], 0), "diameter_mm"),
    ("esp32-s3-devkitc-1.json", _set(["geometry", "mount_mm"], KeyError), "mount_mm"),
    ("esp32-c3-devkitm-1.json", _set(["sensor", "pins", "trig"], 8), "strapping"),
    ("esp32-c3-devkitm-1.json", _set(["sensor", "pins", "echo"], 18), "USB"),
    ("esp32-c3-devkitm-1.json", _set(["sensor", "pins", "echo"], 22), "does not exist"),
    ("esp32-c3-devkitm-1.json", _set(["geometry", "shape"], "cone"), "geometry.shape"),
    ("esp32-c3-devkitm-1.json", _set(["sensor", "pins"], {"trig": 5}), "pins.echo"),
    ("esp32-c3-devkitm-1.json", _set(["transport"], {}), "transport"),
    ("virtual.json", _set(["mcu"], "esp32"), "sim needs mcu virtual"),
    # deep-sleep wake: ESP32 RTC GPIOs, S3 0-21, C3 0-5 (the C3 board's old GPIO 10)
    ("esp32-devkitc.json", _set(["pins", "button"], 16), "cannot wake esp32"),
    ("esp32-s3-devkitc-1.json", _set(["pins", "button"], 40), "cannot wake esp32s3"),
    ("esp32-c3-devkitm-1.json", _set(["pins", "button"], 10), "cannot wake esp32c3"),
    # UART0 (REPL) and WROVER PSRAM pins
    ("esp32-devkitc.json", _set(["sensor", "pins", "dout"], 3), "UART0"),
    ("esp32-devkitc.json", _set(["sensor", "pins", "sck"], 1), "UART0"),
    ("esp32-s3-devkitc-1.json", _set(["sensor", "pins", "sda"], 43), "UART0"),
    ("esp32-c3-devkitm-1.json", _set(["sensor", "pins", "echo"], 20), "UART0"),
    ("esp32-devkitc.json", _set(["memory", "psram"], "quad"), "GPIO 16 is wired to flash/PSRAM"),
    # distance sensors: full level out of the blind zone, empty level within range
    ("esp32-c3-devkitm-1.json", _set(["geometry", "mount_mm"], 800), "blind zone"),
    ("esp32-c3-devkitm-1.json", _set(["sensor", "max_mm"], 850), "beyond"),
    ("esp32-c3-devkitm-1.json", _set(["geometry", "mount_mm"], 5000), "beyond"),
    ("esp32-c3-devkitm-1.json", _set(["sensor", "model"], "srf05"), "sensor.model"),
    ("esp32-s3-devkitc-1.json", _set(["geometry", "mount_mm"], 240), "blind zone"),
    ("esp32-s3-devkitc-1.json", _set(["geometry", "mount_mm"], 1500), "beyond"),
    ("esp32-s3-devkitc-1.json", _set(["geometry", "input"], "height"), "input must be"),
    ("esp32-s3-devkitc-1.json", _set(["sensor", "pins", "xshut"], 9), "already used"),
    ("esp32-s3-devkitc-1.json", _set(["sensor", "pins", "xshut"], 44), "UART0"),
]


@pytest.mark.parametrize("name,fn,msg", BAD, ids=[b[2] for b in BAD])
def test_invalid_boards_rejected(name, fn, msg):
    with pytest.raises(ValueError) as e:
        board.validate(_mut(name, fn))
    assert msg in str(e.value)


def test_analog_must_be_adc1():
    cfg = _load("esp32-c3-devkitm-1.json")
    cfg["sensor"] = {"type": "analog", "pins": {"adc": 5}, "atten": 11}
    with pytest.raises(ValueError, match="ADC1"):
        board.validate(cfg)
    cfg["sensor"]["pins"]["adc"] = 3
    board.validate(cfg)


@pytest.mark.parametrize("mcu,pin,atten,uv,ok", [
    ("esp32c3", 3, 11, [500000, 2500000], True),      # C3: 0-2500 mV at 11 dB
    ("esp32c3", 3, 11, [500000, 2600000], False),
    ("esp32c3", 3, 3, [500000, 1000000], False),       # no 3 dB attenuation
    ("esp32", 34, 11, [150000, 2450000], True),        # ESP32: 150-2450 mV at 11 dB
    ("esp32", 34, 11, [500000, 3100000], False),       # the old "linear to 3.1 V"
    ("esp32", 34, 0, [50000, 900000], False),          # <= 100 mV reads 0 at 0 dB
    ("esp32s3", 4, 11, [0, 3100000], True),
])
def test_analog_calibration_inside_the_linear_range(mcu, pin, atten, uv, ok):
    cfg = _load({"esp32c3": "esp32-c3-devkitm-1.json", "esp32": "esp32-devkitc.json",
                 "esp32s3": "esp32-s3-devkitc-1.json"}[mcu])
    cfg["sensor"] = {"type": "analog", "pins": {"adc": pin}, "atten": atten,
                     "calibration": {"uv": uv, "value": [0, 100]}}
    cfg["geometry"] = {"shape": "linear", "empty": 0, "full": 100}
    if ok:
        board.validate(cfg)
    else:
        with pytest.raises(ValueError, match="linear range|atten"):
            board.validate(cfg)


def test_old_c3_board_is_rejected_twice_over():
    cfg = _load("esp32-c3-devkitm-1.json")
    cfg["pins"]["button"] = 4
    cfg["geometry"]["mount_mm"] = 800                  # full drum at 220 mm
    with pytest.raises(ValueError, match="reads 220 mm, inside the jsn-sr04t's blind zone"):
        board.validate(cfg)


def test_load_errors(tmp_path):
    with pytest.raises(OSError):
        board.load(str(tmp_path / "nope.json"))
    p = tmp_path / "b.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        board.load(str(p))
