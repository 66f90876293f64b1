# VL53L0X driver against a fake I2C bus that records register traffic.
import sys
if sys.implementation.name != "micropython":  # pytest collects a file named on the command line
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
from firmware.sensors.vl53l0x import VL53L0X


class FakeTof:
    """Answers like a VL53L0X at 0x29: model id, stop variable, single-shot ranging."""

    def __init__(self, ranges, status=11, model=0xEE, stuck=False):
        self.regs = bytearray(256)
        self.regs[0xC0] = model
        self.regs[0x91] = 0x3C
        self.regs[0x84] = 0x11
        self.ranges = list(ranges)
        self.status = status
        self.stuck = stuck      # never reports a result
        self.log = []           # ("w"|"r", reg, value)
        self.dead = False

    def _check(self, addr):
        if self.dead or addr != 0x29:
            raise OSError(19)   # ENODEV: no ACK

    def readfrom_mem_into(self, addr, reg, buf):
        self._check(addr)
        for i in range(len(buf)):
            buf[i] = self.regs[reg + i]
        self.log.append(("r", reg, bytes(buf)))

    def writeto_mem(self, addr, reg, buf):
        self._check(addr)
        v = buf[0]
        self.log.append(("w", reg, v))
        if reg == 0x00 and v == 1 and self.regs[0xFF] == 0:
            # start of a single-shot: bit clears at once, result ready
            self.regs[0] = 0
            if not self.stuck:
                mm = self.ranges.pop(0)
                self.regs[0x14] = self.status << 3
                self.regs[0x1E] = mm >> 8
                self.regs[0x1F] = mm & 0xFF
                self.regs[0x13] = 0x04
            return
        if reg == 0x0B and v == 1:
            self.regs[0x13] = 0
            return
        self.regs[reg] = v


def test_init_sequence_and_reading():
    f = FakeTof([1234])
    s = VL53L0X(f, offset_mm=-4)
    assert s.setup() is True
    assert f.log[0] == ("r", 0xC0, b"\xee")
    writes = [(r, v) for k, r, v in f.log if k == "w"]
    assert (0x89, 1) in writes and (0x88, 0) in writes and (0x0A, 4) in writes
    assert (0x84, 0x01) in writes       # interrupt active low
    assert s._stop == 0x3C
    f.log = []
    assert s.read() == 1230
    w = [(r, v) for k, r, v in f.log if k == "w"]
    # the stop variable is restored before each start, start, then interrupt clear
    assert w.index((0x91, 0x3C)) < w.index((0x00, 1)) and w[-1] == (0x0B, 1), w
    assert ("r", 0x1E, b"\x04\xd2") in f.log


def test_out_of_range_codes():
    f = FakeTof([8190, 8191, 500])
    s = VL53L0X(f)
    assert s.read() is None and s.read() is None and s.read() == 500


def test_bad_status_is_none():
    s = VL53L0X(FakeTof([300], status=4))   # no target (MSRC)
    assert s.read() is None


def test_wrong_model_id():
    s = VL53L0X(FakeTof([100], model=0xAA))
    assert s.setup() is False and s.read() is None


def test_dead_sensor_enodev():
    f = FakeTof([100])
    f.dead = True
    s = VL53L0X(f)
    assert s.setup() is False
    assert s.read() is None
    # wrong address: also no ACK
    assert VL53L0X(FakeTof([1]), addr=0x30).read() is None


def test_unplug_and_replug():
    f = FakeTof([100, 200, 300])
    s = VL53L0X(f)
    assert s.read() == 100
    f.dead = True
    assert s.read() is None and s.ok is False
    f.dead = False
    assert s.read() == 200     # re-initialised on the next read


def test_timeout_when_no_result():
    s = VL53L0X(FakeTof([], stuck=True), timeout_ms=10)
    assert s.read() is None
