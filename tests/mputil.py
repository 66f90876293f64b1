"""Helpers to run code on the real MicroPython unix port from CPython tests."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from host_tools.board import micropython_bin  # noqa: E402,F401 (one lookup for tools and tests)


def mp32_cmd(setup=True):
    """The 32-bit (wasm32) MicroPython unix port as a command list, or None if it cannot be
    set up here (no node). tests/mp32/setup installs it into .cache/mp32 on first use."""
    js = ROOT / ".cache/mp32/mp32.mjs"
    if setup:
        p = subprocess.run([str(ROOT / "tests/mp32/setup")], capture_output=True, text=True)
        if p.returncode != 0:
            return None
    if not js.exists() or not shutil.which("node"):
        return None
    return ["node", str(js)]


def run_mp(code=None, script=None, args=(), heap="64K", timeout=120, cwd=None, check=True):
    """Run `code` (a string) or `script` (a path) on MicroPython; return stdout text.

    The repo root is on sys.path, so `import protocol.cbor` and `import firmware.x`
    work as they do on a board where deploy copies both packages to the root.
    """
    cmd = [micropython_bin(), "-X", "heapsize=" + heap]
    env = dict(os.environ, MICROPYPATH=str(ROOT) + ":.frozen")
    if code is not None:
        cmd += ["-c", code]
    else:
        cmd += [str(script)]
    cmd += list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=env)
    if check and p.returncode != 0:
        raise AssertionError("micropython failed (%d):\n%s\n%s" % (p.returncode, p.stdout[-4000:], p.stderr[-4000:]))
    return p.stdout
