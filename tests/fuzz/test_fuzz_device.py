"""The device's downlink parser, fuzzed on MicroPython under a 64 KB heap."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from mputil import micropython_bin  # noqa: E402

N = int(os.environ.get("FUZZ_MP_INPUTS", "100000"))


def test_downlink_parser_mutation_fuzz_on_micropython():
    env = dict(os.environ, MICROPYPATH=str(ROOT))
    p = subprocess.run([micropython_bin(), "-X", "heapsize=64K", "tests/fuzz/mp_fuzz_downlink.py", str(N), "7",
                        "tests/fuzz/corpus"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=400)
    print(p.stdout)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    m = re.search(r"inputs (\d+) accepted (\d+) rejected (\d+)", p.stdout)
    inputs, accepted, rejected = map(int, m.groups())
    assert inputs == N
    # every input was either accepted by the schema or rejected with a counted reason
    assert rejected > N // 2
    # each parser layer was reached
    for name in ("FrameError", "AuthError", "DecodeError"):
        assert name in p.stdout, name
    growth = int(re.search(r"growth (-?\d+)", p.stdout).group(1))
    assert growth < 8192, "heap grew by %d bytes" % growth
