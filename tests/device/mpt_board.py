# Board files load and validate on MicroPython; the virtual board builds end to end.
import sys
if sys.implementation.name != "micropython":  # pytest collects a file named on the command line
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
import os
from firmware import boardcheck as board

NAMES = ("esp32-devkitc", "esp32-s3-devkitc-1", "esp32-c3-devkitm-1", "virtual")


def test_all_board_files_load():
    files = [f for f in os.listdir("boards") if f.endswith(".json")]
    assert len(files) >= 4
    for n in NAMES:
        assert board.load("boards/%s.json" % n)["name"] == n


def test_negative_cases():
    cfg = board.load("boards/esp32-c3-devkitm-1.json")
    for path, val, msg in ((("sensor", "pins", "echo"), 5, "already used"),
                           (("sensor", "pins", "trig"), 9, "strapping"),
                           (("sensor", "type"), "radar", "unknown sensor"),
                           (("geometry", "length_mm"), None, "length_mm")):
        d = board.load("boards/esp32-c3-devkitm-1.json")
        t = d
        for k in path[:-1]:
            t = t[k]
        t[path[-1]] = val
        try:
            board.validate(d)
        except ValueError as e:
            assert msg in str(e), (msg, str(e))
            continue
        raise AssertionError("accepted " + msg)
    del cfg["power"]
    try:
        board.validate(cfg)
        raise AssertionError("missing power accepted")
    except ValueError as e:
        assert "power" in str(e)
