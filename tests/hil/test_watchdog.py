"""The watchdog and the ways around it, on the virtual board, which keeps an ESP32's
rules: machine.WDT cannot be stopped once started and outlives a Ctrl-C into the REPL and
a soft reset; a hard reset, a deep sleep or a power-on ends it."""
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from host_tools.board import VirtualBoard
from host_tools.rig import Rig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from test_board import mpremote, wait_for  # noqa: E402  (tests/host's mpremote helpers)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def board(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("virtual board only")
    with VirtualBoard(tmp_path / "pty", tmp_path / "flash", speed=100, seed=7) as b:
        yield b


def test_watchdog_outlives_the_repl_and_a_soft_reset(board):
    mpremote(board.pty_path, "exec", "import machine; machine.WDT(timeout=1000).feed()")
    # the REPL is idle, nobody feeds: the board resets with WDT_RESET
    assert wait_for(lambda: board.wdt_resets == 1, timeout=6)
    assert mpremote(board.pty_path, "eval", "__import__('machine').reset_cause()").strip() in ("3", "5")
    # a soft reset (Ctrl-D) does not stop it either
    mpremote(board.pty_path, "exec", "import machine; machine.WDT(timeout=1000).feed()", "soft-reset")
    assert wait_for(lambda: board.wdt_resets == 2, timeout=6)
    # a hard reset does
    mpremote(board.pty_path, "exec", "import machine; machine.WDT(timeout=1000).feed()")
    mpremote(board.pty_path, "reset", check=False)
    time.sleep(3)
    assert board.wdt_resets == 2


def _src_with_watchdog(tmp_path, ms):
    src = tmp_path / "src"
    for d in ("firmware", "protocol", "boards"):
        shutil.copytree(ROOT / d, src / d, ignore=shutil.ignore_patterns("__pycache__"))
    p = src / "boards" / "virtual.json"
    b = json.loads(p.read_text())
    b["power"]["wdt_ms"] = ms
    p.write_text(json.dumps(b))
    return src


def test_deploy_onto_a_running_agent_never_races_its_watchdog(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("virtual board only")
    src = _src_with_watchdog(tmp_path, 1500)
    r = Rig(tmp_path / "rig", speed=2000, seed=3, baud=115200)   # a USB-UART bridge's line
    r.start_board()
    try:
        kw = dict(src=str(src), cache=str(tmp_path / "cache"))
        r.deploy(**kw)
        flash = Path(r.vboard.flash_dir)
        assert wait_for(lambda: (flash / "state" / "boot.json").exists(), timeout=20)
        time.sleep(2)                      # the agent runs and feeds its 1.5 s watchdog
        assert r.vboard.wdt_resets == 0
        (flash / ".deploy.json").unlink()  # a full copy: longer than the watchdog's timeout
        res = r.deploy(**kw)
        assert res["files"] > 10 and len(res["changed"]) == res["files"]
        assert r.vboard.wdt_resets == 0, "the watchdog reset the board during the deploy"
        print("full deploy at 115200 baud: %.1f s, %d bytes" % (res["seconds"], res["bytes"]))
    finally:
        r.stop()


def test_safe_mode_file_keeps_the_agent_off(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("virtual board only")
    r = Rig(tmp_path / "rig", speed=2000, seed=3)
    r.start_board()
    try:
        r.deploy(reset=False)
        flash = Path(r.vboard.flash_dir)
        (flash / "SAFE").write_text("")
        mpremote(r.port, "reset", check=False)
        time.sleep(2)
        assert not (flash / "state" / "boot.json").exists()   # the agent never started
        assert "7" in mpremote(r.port, "eval", "3+4")          # the REPL is free
    finally:
        r.stop()
