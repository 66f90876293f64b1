"""RAM of each sensor driver on a board: the heap a driver's .mpy (as `consumables deploy`
builds it, no line tables) takes once imported, built from its board section, set up and
read once with no chip attached (a VL53L0X loads its init code and drops it again; a chip
model would count its own allocations), on the ESP32-shaped 32-bit
MicroPython (tests/mp32) and the 64-bit unix port, side by side. The agent imports only
its board's one driver (firmware/sensors/__init__.py build()).

  python tests/benchmarks/bench_drivers.py
"""
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests/benchmarks"))
from mputil import micropython_bin, mp32_cmd  # noqa: E402
import bench_memory  # noqa: E402

SENSORS = {
    "hx711": {"type": "hx711", "pins": {"dout": 16, "sck": 17}, "calibration": {"scale": 22.5}},
    "vl53l0x": {"type": "vl53l0x", "pins": {"sda": 8, "scl": 9}},
    "ultrasonic": {"type": "ultrasonic", "model": "jsn-sr04t", "pins": {"trig": 5, "echo": 6}, "samples": 5},
    "analog": {"type": "analog", "pins": {"adc": 3}, "atten": 11},
}

PROBE = """
import gc, sys
sys.path.insert(0, '.')
from firmware import hal
import firmware.sensors
from firmware.sensors import sim
hal.I2C; hal.ADC
gc.collect()
a = gc.mem_alloc()
s = firmware.sensors.build({"sensor": %r})
s.setup()
s.read()
gc.collect()
assert 'firmware.sensors.vl53l0x_init' not in sys.modules
print(gc.mem_alloc() - a)
"""


def measure(cmd, src, section):
    p = subprocess.run(cmd + ["-X", "heapsize=256K", "-c", PROBE % section], cwd=src,
                       capture_output=True, text=True, timeout=60)
    return int(p.stdout.split()[-1]) if p.returncode == 0 else "error: " + (p.stderr or p.stdout)[-200:]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        bench_memory.build_mpy(tmp)
        runs = [("64-bit", [micropython_bin()])]
        mp32 = mp32_cmd()
        if mp32:
            runs.append(("32-bit", mp32))
        print("%-11s %s" % ("driver", "  ".join("%10s" % n for n, _ in runs)))
        for name, sec in SENSORS.items():
            print("%-11s %s" % (name, "  ".join("%8s B" % measure(c, tmp, sec) for _, c in runs)))


if __name__ == "__main__":
    main()
