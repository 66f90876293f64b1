"""The simulated world across power cuts, and an emulated full flash (virtual board only;
loaded only when used, so the World itself stays small).

State file (World cfg "state", relative to the flash directory): 8 floats (speed, the
configured speed, rate, then World.data's noise, spike and dropout, the level and the
empty-since time) as doubles, then 8 uint32s (the host's wall clock in s and ms, the refill count,
World.ints' clock seconds and milliseconds, consumption time, next refill slot, the clock
at the last power-on). Saved at start and after every control command; consumption in
between is a function of time, so a reboot resumes the same world (time went on while
the power was off) and never looks like a refill. A missing or unreadable file (or one
of another layout) starts a fresh world. Integers stay integers: on a float32 port an
array("d") rounds every value through a float32 (time.time() to 128 s).

`flash N` (a control command) emulates a flash with N more free bytes: a store write beyond
it raises OSError(ENOSPC) as LittleFS does; `flash` alone lifts the limit.
"""
import os
import time
from array import array
from firmware.compat import const

# slots of World.data and World.ints, as in simworld.py
_NOISE = const(0)
_LEVEL = const(4)
_EMPTY = const(5)
_SPEED = const(15)
_ISEC = const(5)
_IMS = const(6)
_IT = const(7)
_IRI = const(8)
_IRTC = const(9)

_real = None   # store.write_file before flash() wrapped it


def power_on(w):
    """A power-on reset (power cut, EN button): the device's RTC starts again at 0."""
    w.now()
    w.ints[_IRTC] = w.ints[_ISEC]


def boot(w):
    """Resume the world from its state file, or start the file. After a power-on reset
    (the virtual board's machine.reset_cause()) the device's RTC starts again at 0."""
    s, n = w.data, w.ints
    f8, u4 = array("d", range(8)), array("I", range(8))
    try:
        with open(w.state, "rb") as f:
            if f.readinto(f8) != 64 or f.readinto(u4) != 32 or f.read(1):
                raise ValueError
    except (OSError, ValueError):
        save(w)
        return
    s[_NOISE:_NOISE + 3] = f8[3:6]
    s[_LEVEL], s[_EMPTY] = f8[6], f8[7]
    n[_ISEC:_IRTC + 1] = u4[3:]
    w.advance(max(0, _host_ms() - (u4[0] * 1000 + u4[1])) * f8[0] / 1000)   # time went on
    w.rate = f8[2]
    w.refill_count = u4[2]
    if f8[1] == s[_SPEED]:   # else the board was restarted with a new speed
        w.speed = f8[0]
    i = n[_IRI]
    while i < len(n) and n[i] <= n[_IT]:   # scheduled refills that are past
        i += 1
    n[_IRI] = i
    try:
        import machine
        if machine.reset_cause() == 1:     # PWRON_RESET
            power_on(w)
    except (ImportError, AttributeError):  # the bare unix port: in-process tests
        pass


def _host_ms():
    # the host's wall clock in ms, from time_ns(): an int (time.time() is whole seconds
    # on MicroPython, and a float32 there would be 128 s coarse)
    return time.time_ns() // 1000000


def save(w):
    s, n = w.data, w.ints
    w.level(n[_ISEC])   # consumption up to now
    tmp = w.state + ".tmp"
    with open(tmp, "wb") as f:
        f.write(array("d", (w.speed, s[_SPEED], w.rate)) + s[_NOISE:_NOISE + 3] + s[_LEVEL:_EMPTY + 1])
        ms = _host_ms()
        f.write(array("I", (ms // 1000, ms % 1000, w.refill_count)) + n[_ISEC:_IRTC + 1])
    os.rename(tmp, w.state)


def du(p="."):
    """Bytes in the files under directory p."""
    n = 0
    for e in os.ilistdir(p):
        q = p.rstrip("/") + "/" + e[0]
        n += du(q) if e[1] == 0x4000 else os.stat(q)[6]
    return n


def flash(w, free=None):
    """Emulate a flash with `free` more bytes (None: no limit)."""
    global _real
    from firmware import store
    w.quota = 0 if free is None else du() + int(free)
    if _real is None:
        _real = real = store.write_file

        def wf(path, data):
            real(path, data)
            if w.quota and du() > w.quota:
                raise OSError(28)   # ENOSPC; store.write_atomic removes the tmp
        store.write_file = wf
