# The virtual board end to end on MicroPython: board file -> simulated world ->
# sim sensor -> geometry -> filter chain, checked against the world's true level.
import sys
if sys.implementation.name != "micropython":  # pytest collects a file named on the command line
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
# Import order matters under a 64K heap when compiling from source: the larger
# modules first, while the heap is empty (deployed .mpy files need no compiling).
import json
from firmware import hal, sensors, geometry, filters


def _cfg():
    # boards/virtual.json is validated by mpt_board.py; here only its contents matter
    with open("boards/virtual.json") as f:
        return json.load(f)


def test_virtual_board_end_to_end():
    cfg = _cfg()
    cfg["world"]["speed"] = 0      # manual clock: deterministic
    cfg["world"]["ctl"] = None
    w = hal.world(cfg)
    s = sensors.build(cfg)
    s.setup()
    b = sensors.build_button(cfg)
    g = geometry.from_board(cfg)
    ch = filters.build(cfg["filters"], g.capacity)
    worst = 0
    for i in range(300):               # 300 x 10 min = ~2 days
        w.advance(600)
        v = ch.update(g.quantity(s.read()))
        if v is not None and i > 10:
            worst = max(worst, abs(v - w.level()))
    assert w.level() < 3000
    assert worst < 0.05 * 3000, worst  # filtered within 5 % FS of the truth
    assert ch.quality() >= 6, ch.quality()
    w.press()
    assert [b.pressed() for _ in range(2)] == [False, False]   # debounce needs time
    hal.sleep_ms(60)
    assert b.pressed() is True
