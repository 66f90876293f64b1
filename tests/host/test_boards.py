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
    ("esp32-devkitc.json", _set(["pins", "button"], 17), "already used"),
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


def test_load_errors(tmp_path):
    with pytest.raises(OSError):
        board.load(str(tmp_path / "nope.json"))
    p = tmp_path / "b.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        board.load(str(p))
