"""The main job, as README's first command runs it: `consumables demo` (virtual board,
real firmware deployed with mpremote, bridge, live view, scripted supplier) must finish
with every check passing. About 70 s."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.demo import view

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.hil


def test_live_view_before_the_bridge_has_a_database(tmp_path):
    # the live screen polls at once; the bridge creates its database a moment later
    from rich.console import Console
    console = Console(record=True, width=100)
    console.print(view(tmp_path / "not-yet.sqlite", ["  0.1s  work directory ..."]))
    text = console.export_text()
    assert "waiting for the bridge" in text and "work directory" in text


def test_demo_passes_every_check(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("the demo runs on the virtual board")
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "demo", "--workdir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, COLUMNS="120"))
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    assert out.count("PASS") == 5 and "FAIL" not in out, out[-3000:]
