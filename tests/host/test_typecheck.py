"""mypy over firmware/ and protocol/ against micropython-esp32-stubs.

Fails when firmware calls an API the ESP32 port does not have (e.g. machine.Pn, or a
wrong signature of machine.deepsleep). See tests/typecheck/mypy.ini for the setup.
"""
import importlib.metadata as md
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INI = ROOT / "tests" / "typecheck" / "mypy.ini"


def _stub_paths(tmp):
    try:
        esp = md.distribution("micropython-esp32-stubs")
        std = md.distribution("micropython-stdlib-stubs")
    except md.PackageNotFoundError:
        pytest.skip("micropython-esp32-stubs not installed")
    stubs = tmp / "stubs"
    stubs.mkdir()
    mods = set()
    # the board's modules, plus the stdlib stubs' private helper package they import
    files = [(esp, f) for f in esp.files] + [(std, f) for f in std.files if f.parts[0] == "_mpy_shed"]
    for dist, f in files:
        if f.parts[0].endswith(".dist-info") or not str(f).endswith(".pyi"):
            continue
        dst = stubs / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            os.symlink(Path(dist.locate_file(f)), dst)
        mods.add(f.parts[0][:-4] if len(f.parts) == 1 else f.parts[0])
    typeshed = None
    for f in std.files:
        if str(f).replace("\\", "/").endswith("stdlib/VERSIONS"):
            typeshed = Path(std.locate_file(f)).parent.parent
    assert typeshed is not None, "micropython-stdlib-stubs has no stdlib/VERSIONS"
    return stubs, typeshed, sorted(mods)


def _mypy(tmp, targets):
    stubs, typeshed, mods = _stub_paths(tmp)
    # stubs on MYPYPATH are checked like our code: their own internal slips are not ours
    ini = tmp / "mypy.ini"
    ini.write_text(INI.read_text() + "\n[mypy-%s]\nignore_errors = True\n" % ",".join(
        m + "," + m + ".*" for m in mods))
    env = dict(os.environ, MYPYPATH=str(stubs))
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ini), "--custom-typeshed-dir",
           str(typeshed), "--cache-dir", str(tmp / "cache")] + [str(t) for t in targets]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_firmware_and_protocol_typecheck(tmp_path):
    p = _mypy(tmp_path, ["firmware", "protocol"])
    assert p.returncode == 0, p.stdout + p.stderr


def test_nonexistent_machine_api_is_caught(tmp_path):
    bad = tmp_path / "pkg"
    bad.mkdir()
    (bad / "uses_machine.py").write_text(
        "import machine\n\n\ndef f():\n    machine.Pin(2, machine.Pin.OUT).toggle_fast()\n"
        "    machine.deepsleep('soon')\n")
    p = _mypy(tmp_path, [bad / "uses_machine.py"])
    assert p.returncode != 0
    assert "toggle_fast" in p.stdout and "deepsleep" in p.stdout, p.stdout
