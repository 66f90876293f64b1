"""Helpers to run code on the real MicroPython unix port from CPython tests."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from host_tools.board import micropython_bin  # noqa: E402,F401 (one lookup for tools and tests)


def mp32_bin():
    """The ESP32-shaped MicroPython (the unix port built 32-bit with single-precision
    floats, tests/mp32/setup): $MICROPYTHON32, else .cache/mp32/micropython; None if absent."""
    p = os.environ.get("MICROPYTHON32") or str(ROOT / ".cache/mp32/micropython")
    return p if os.access(p, os.X_OK) else None


def mp32_cmd():
    """mp32_bin() as a command list, or None."""
    b = mp32_bin()
    return None if b is None else [b]


def mp32_missing():
    """Why the ESP32-shaped interpreter is not there (for a skip), or None if it is."""
    if mp32_bin() is not None:
        return None
    return "ESP32-shaped MicroPython (32-bit, float32) not built: run tests/mp32/setup"


def run_mp(code=None, script=None, args=(), heap="64K", timeout=120, cwd=None, check=True, binary=None):
    """Run `code` (a string) or `script` (a path) on MicroPython; return stdout text.

    The repo root is on sys.path, so `import protocol.cbor` and `import firmware.x`
    work as they do on a board where deploy copies both packages to the root.
    """
    cmd = [binary or micropython_bin(), "-X", "heapsize=" + heap]
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
