"""The simulated world across power cuts, and an emulated full flash (virtual board only;
loaded only when used, so the World itself stays small).

State file (World cfg "state", relative to the flash directory): 12 doubles, the host's
wall clock, the speed, the configured speed, the rate, the refill count, then World.data's
first slots (noise, spike, dropout, consumption time, level, empty-since, clock). Saved at
start and after every control command; consumption in between is a function of time, so a
reboot resumes the same world (time went on while the power was off) and never looks like
a refill. A missing or unreadable file starts a fresh world.

`flash N` (a control command) emulates a flash with N more free bytes: a store write beyond
it raises OSError(ENOSPC) as LittleFS does; `flash` alone lifts the limit.
"""
import os
import time
from array import array
from firmware.compat import const

# slots of World.data, as in simworld.py: the file keeps 0.._SIM
_T = const(3)
_SIM = const(6)
_SPEED = const(15)
_RI = const(29)
_H = const(5)        # doubles before them in the file

_real = None   # store.write_file before flash() wrapped it


def boot(w):
    """Resume the world from its state file, or start the file."""
    s = w.data
    st = array("d", range(_H + _SIM + 1))
    try:
        with open(w.state, "rb") as f:
            if f.readinto(st) != len(st) * 8 or f.read(1):
                raise ValueError
    except (OSError, ValueError):
        save(w)
        return
    s[0:_SIM + 1] = st[_H:]
    s[_SIM] += max(0.0, time.time() - st[0]) * st[1]   # time went on
    w.rate = st[3]
    w.refill_count = int(st[4])
    if st[2] == s[_SPEED]:   # else the board was restarted with a new speed
        w.speed = st[1]
    i = int(s[_RI])
    while i < len(s) and s[i] <= s[_T]:   # scheduled refills that are past
        i += 1
    s[_RI] = i


def save(w):
    s = w.data
    w.level(s[_SIM])   # consumption up to now
    st = array("d", (time.time(), w.speed, s[_SPEED], w.rate, w.refill_count)) + s[:_SIM + 1]
    tmp = w.state + ".tmp"
    with open(tmp, "wb") as f:
        f.write(st)
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
