"""pytest plugin: MicroPython test files (mpt_*.py) become pytest items.

A file `tests/**/mpt_NAME.py` holds plain `test_*` functions written for MicroPython.
The file is run once per runtime by tests/mp_runner.py and each function is reported
as its own pytest item, e.g. `mpt_cbor.py::test_roundtrip[micropython]`.

"micropython" means both MicroPython interpreters: PyPI's unix port (64-bit, double
floats; items `[micropython]`) and the ESP32-shaped build of the same port (32-bit,
single-precision floats as on an ESP32; items `[mp32]`, built by tests/mp32/setup). A
file runs on both unless its header names one of them alone (`# runtimes: mp32`).
Where the ESP32-shaped binary is not built its items are skipped, except under CI=true,
where they fail: CI must never pass without them.

Header comments (in the first 20 lines) configure a file:
  # runtimes: micropython cpython   (default: micropython only)
  # heapsize: 64K                    (default 64K: an ESP32 without PSRAM has ~100 KB free)
  # timeout: 120                     (seconds for the whole file)
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mputil import ROOT, micropython_bin, mp32_bin, mp32_missing  # noqa: E402

RUNNER = Path(__file__).resolve().parent / "mp_runner.py"


def _header(path):
    opts = {"runtimes": "micropython", "heapsize": "64K", "timeout": "120"}
    with open(path) as f:
        for _, line in zip(range(20), f):
            line = line.strip()
            if line.startswith("#") and ":" in line:
                k, v = line[1:].split(":", 1)
                if k.strip() in opts:
                    opts[k.strip()] = v.split()[0] if k.strip() != "runtimes" else v.strip()
    return opts


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".py" and file_path.name.startswith("mpt_"):
        return MpFile.from_parent(parent, path=file_path)


class MpFile(pytest.File):
    def collect(self):
        opts = _header(self.path)
        tree = ast.parse(self.path.read_text())
        names = sorted(n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_"))
        self._opts = opts
        self._results = {}
        runtimes = []
        for rt in opts["runtimes"].split():
            runtimes += ["micropython", "mp32"] if rt == "micropython" else [rt]
        for rt in runtimes:
            for name in names:
                yield MpItem.from_parent(self, name="%s[%s]" % (name, rt), fn=name, runtime=rt)

    def results(self, runtime):
        if runtime not in self._results:
            if runtime in ("micropython", "mp32"):
                binary = micropython_bin() if runtime == "micropython" else mp32_bin()
                cmd = [binary, "-X", "heapsize=" + self._opts["heapsize"]]
            else:
                cmd = [sys.executable]
            cmd += [str(RUNNER), str(ROOT), str(self.path)]
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                                   timeout=float(self._opts["timeout"]))
                out, err, rc = p.stdout, p.stderr, p.returncode
            except subprocess.TimeoutExpired as e:
                out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
                err, rc = "timeout after %ss" % self._opts["timeout"], -1
            res = {}
            for line in out.splitlines():
                if line.startswith("@@ "):
                    parts = line.split(" ", 3)
                    res[parts[1]] = (parts[2], parts[3] if len(parts) > 3 else "")
            self._results[runtime] = (res, out, err, rc)
        return self._results[runtime]


class MpItem(pytest.Item):
    def __init__(self, *, fn, runtime, **kw):
        super().__init__(**kw)
        self.fn = fn
        self.runtime = runtime

    def runtest(self):
        if self.runtime == "mp32" and mp32_missing():
            if os.environ.get("CI"):
                raise MpFailure(self.fn, mp32_missing(), "", "")
            pytest.skip(mp32_missing())
        res, out, err, rc = self.parent.results(self.runtime)
        if "*" in res:
            raise MpFailure(self.fn, res["*"][1], out, err)
        if self.fn not in res:
            raise MpFailure(self.fn, "did not run (rc=%s)" % rc, out, err)
        status, msg = res[self.fn]
        if status != "PASS":
            raise MpFailure(self.fn, msg, out, err)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MpFailure):
            e = excinfo.value
            return "%s on %s: %s\n--- output ---\n%s\n--- stderr ---\n%s" % (
                e.args[0], self.runtime, e.args[1], e.args[2][-3000:], e.args[3][-3000:])
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, "%s::%s" % (self.path.name, self.name)


class MpFailure(Exception):
    pass


@pytest.fixture(scope="session")
def micropython():
    """Path of the MicroPython unix port binary."""
    return micropython_bin()


def pytest_addoption(parser):
    g = parser.getgroup("hil", "hardware-in-the-loop suite (tests/hil)")
    g.addoption("--port", default=None, help="serial port of a real board (default: a virtual board)")
    g.addoption("--board", default="virtual", help="board file name in boards/ for --port")
