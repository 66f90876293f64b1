"""The complete agent on the 32-bit build of the MicroPython unix port (an ESP32's word
size; tests/mp32), from .mpy files built by mpy-cross: 10,000 cycles (read, filter,
estimate, decide, encode, store, send to a loopback bridge that acks) in a 96K heap, under
the ~100 KB an ESP32 without PSRAM has free, with no heap growth after warm-up.

The simulated world and HAL run in the same heap, so a real board needs less. The issue's
64K target is not met yet: `python tests/benchmarks/bench_memory.py` prints the smallest
heap for .py and .mpy on both word sizes.
"""
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_memory  # noqa: E402
from mputil import mp32_cmd  # noqa: E402

HEAP_32 = "96K"      # bisected: 88-92K works; 4K of margin against fragmentation luck


@pytest.fixture(scope="module")
def mp32():
    cmd = mp32_cmd()
    if cmd is None:
        pytest.skip("32-bit MicroPython unavailable: tests/mp32/setup needs node (>= 18)")
    return cmd


def test_agent_10000_cycles_in_96k_on_32bit(mp32):
    with tempfile.TemporaryDirectory() as tmp:
        bench_memory.build_mpy(tmp)
        r = bench_memory.run(mp32, Path(tmp), HEAP_32, 10000)
    assert bench_memory.ok(r), r
    code, boot, warm, end, peak, us = r
    print("32-bit .mpy at %s: import %d B, boot %d B, growth %d B, %d us/cycle" % (
        HEAP_32, code, boot, end - warm, us))
    assert end - warm <= 64, (warm, end)     # no leak: a stray float at most
    assert boot < 96 * 1024
