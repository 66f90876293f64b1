"""A VL53L0X as its I2C registers show it (register map of ST's API, vl53l0x_device.h), for
the device tests. It models the chip, not the driver: until ST's initialisation has been
written (DataInit's 2V8 mode, stop variable and 0.25 MCPS signal limit, the reference SPAD
map from NVM, the default tuning settings, the timing budget, VHV and phase calibration)
a range comes back with the failing statuses ST's API maps to phase fail (6, 9) or
min-range fail (8, 10) and a wrong distance; after it, status 11 and the true distance.

- private pages: 0xFF selects the page; the stop variable (0x91) reads through the
  0x80/0xFF/0x00 window and must be written back before each start;
- NVM: page 7, 0x94 = 0x6B, 0x83 polls non-zero, 0x92 = SPAD count | aperture << 7;
- `tuning_marks`: a few (page, register, value) entries of ST's DefaultTuningSettings that
  must have been written;
- `wedge()`: the ranging core hangs (no result ever) until XSHUT is cycled; `brownout()`:
  registers back to power-on defaults, the sensor keeps answering (garbage until re-init);
- set_xshut(v) is a write to XSHUT: low = hardware standby, no ACK on the bus.
"""

_MARKS = ((0, 0x30, 0x09), (1, 0x4E, 0x2C), (0, 0x52, 0x96), (0, 0x7A, 0x0A), (1, 0x45, 0x26),
          (0, 0x72, 0xFE), (1, 0x0D, 0x01), (0, 0x01, 0xF8))


class VL53L0XModel:
    def __init__(self, distance_mm=500, spads=5, aperture=1, addr=0x29):
        self.distance_mm = distance_mm
        self.spads, self.aperture = spads, aperture
        self.addr = addr
        self.on = True
        self.starts = 0
        self.power_on()

    def power_on(self):
        self.mem = {0: bytearray(256), 1: bytearray(256), 6: bytearray(256), 7: bytearray(256)}
        m = self.mem[0]
        m[0xC0] = 0xEE
        m[0x84] = 0x11
        for i in range(6):
            m[0xB0 + i] = 0xFF        # every reference SPAD marked good by the factory
        self.ff = 0
        self.stop = 0x3C              # the chip's internal stop variable
        self.stop_read = self.stop_ok = False
        self.seen = set()
        self.vhv = self.phase = False
        self.hung = False
        self._k = 0

    def brownout(self):
        self.power_on()

    def wedge(self):
        self.hung = True

    def set_xshut(self, v):
        if not v:
            self.on = False
        elif not self.on:
            self.on = True
            self.power_on()

    # ---- what the model checks --------------------------------------------------
    def spads_ok(self):
        first = 12 if self.aperture else 0
        n = 0
        m = self.mem[0]
        for i in range(48):
            if m[0xB0 + (i >> 3)] >> (i & 7) & 1:
                if i < first:
                    return False
                n += 1
        return n == self.spads

    def initialised(self):
        m = self.mem[0]
        return (m[0x89] & 1 and self.stop_read and m[0x44] == 0 and m[0x45] == 32
                and all(x in self.seen for x in _MARKS) and self.spads_ok()
                and (m[0x71] or m[0x72]) and self.vhv and self.phase)

    # ---- the bus ----------------------------------------------------------------
    def _check(self, addr):
        if not self.on or addr != self.addr:
            raise OSError(19)         # ENODEV: no ACK

    def _read(self, reg):
        p = self.ff
        if p == 1 and reg == 0x91 and self.mem[0][0x80] == 1 and self.mem[1][0x00] == 0:
            self.stop_read = True
            return self.stop
        if p == 7 and reg == 0x83:
            return 0x10 if self.mem[7][0x94] == 0x6B else 0
        if p == 7 and reg == 0x92 and self.mem[7][0x94] == 0x6B:
            return self.spads | self.aperture << 7
        return self.mem.get(p, self.mem[0])[reg]

    def readfrom_mem_into(self, addr, reg, buf):
        self._check(addr)
        for i in range(len(buf)):
            buf[i] = self._read(reg + i)

    def writeto_mem(self, addr, reg, buf):
        self._check(addr)
        for i in range(len(buf)):
            self._write(reg + i, buf[i])

    def _write(self, reg, v):
        if reg == 0xFF:
            self.ff = v
            return
        p = self.ff
        self.seen.add((p, reg, v))
        if p == 1 and reg == 0x91:
            self.stop_ok = v == self.stop
        self.mem.setdefault(p, bytearray(256))[reg] = v
        if p != 0:
            return
        m = self.mem[0]
        if reg == 0x0B and v & 1:
            m[0x13] = 0
        elif reg == 0x00 and v & 1:
            self._start(v)

    def _start(self, v):
        m = self.mem[0]
        m[0x00] = 0                   # bit 0 clears once started
        if self.hung:
            return
        seq = m[0x01]
        if v == 0x41 and seq == 0x01:
            self.vhv = True
        elif v == 0x01 and seq == 0x02:
            self.phase = True
        else:
            self.starts += 1
            ok = self.initialised() and self.stop_ok
            self.stop_ok = False
            d = self.distance_mm
            if d > 2000:
                st, mm = 4, 8190
            elif ok:
                st, mm = 11, d
            else:
                self._k += 1
                st = (6, 9, 8, 10)[self._k % 4]
                mm = d // 2 + 37 * self._k % 300
            m[0x14] = st << 3
            m[0x1E], m[0x1F] = mm >> 8, mm & 0xFF
        m[0x13] = 0x04 if v != 0x41 and seq == 0xE8 else 0x07

