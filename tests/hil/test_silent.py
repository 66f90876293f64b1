"""A main.py that dies (here: the heap is too small for the agent) says so where the user
looks, and the monitor shows the deployed device as silent instead of an empty table."""
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools import deploy as dp
from host_tools.board import VirtualBoard
from host_tools.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from test_board import wait_for  # noqa: E402

KEY = "0123456789abcdef" * 4


def test_a_dying_main_is_reported_and_the_device_shows_silent(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("virtual board only")
    crashes = []
    reg = tmp_path / "registry.json"
    with VirtualBoard(tmp_path / "pty", tmp_path / "flash", heap="48K", speed=1000, seed=1,
                      on_crash=crashes.append) as b:
        dp.deploy(b.pty_path, "virtual", "toner-09", KEY, registry=str(reg), log=lambda m: None)
        wait_for(lambda: crashes, timeout=30)
    assert crashes and "MemoryError" in crashes[0] and crashes[0].startswith("Traceback"), crashes
    Store(str(tmp_path / "bridge.sqlite")).close()     # a bridge that never heard from it
    out = subprocess.run([sys.executable, "-m", "host_tools.cli", "monitor", "--once", "--db",
                          str(tmp_path / "bridge.sqlite"), "--registry", str(reg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    row = [line for line in out.stdout.splitlines() if "toner-09" in line]
    assert row and "silent, never" in row[0], out.stdout


def test_consumables_board_prints_the_traceback(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text("import missing_module_x\n")
    p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "board", "--pty", str(tmp_path / "pty"),
                          "--flash", str(flash)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import os
        import select
        import time
        end = time.monotonic() + 20
        err = ""
        while time.monotonic() < end and "ImportError" not in err:
            r, _, _ = select.select([p.stderr], [], [], 0.5)
            if r:
                err += os.read(p.stderr.fileno(), 65536).decode(errors="replace")
        assert "main.py stopped with an error" in err and "ImportError" in err, err
    finally:
        p.terminate()
        p.wait(10)
