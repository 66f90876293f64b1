"""The simulated world across power cuts, and an emulated full flash (virtual board only;
loaded only when used, so the World itself stays small).

State file (World cfg "state", relative to the flash directory): the clock anchored to the
host's wall clock, level, rate, refills, noise. Saved at start and after every control
command; consumption in between is a function of time, so a reboot resumes the same world
(time went on while the power was off) and never looks like a refill.

`flash N` (a control command) emulates a flash with N more free bytes: a store write beyond
it raises OSError(ENOSPC) as LittleFS does; `flash` alone lifts the limit.
"""
import json
import os
import time

_real = None   # store.write_file before flash() wrapped it


def boot(w):
    if not load(w):
        save(w)


def save(w):
    w.settle()
    st = {"w": time.time(), "s": w._sim, "sp": w.speed, "cs": w._cs, "t": w._t, "l": w._level,
          "e": w._empty_at, "r": w.rate, "n": w.refill_count, "z": (w.noise, w.spike_p, w.dropout_p)}
    tmp = w._state + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.rename(tmp, w._state)


def load(w):
    try:
        with open(w._state) as f:
            st = json.load(f)
        sp = st["sp"]
        w._sim = st["s"] + max(0.0, time.time() - st["w"]) * sp   # time went on
        w._t = st["t"]
        w._level = st["l"]
        w._empty_at = st["e"]
        w.rate = st["r"]
        w.refill_count = st["n"]
        w.noise, w.spike_p, w.dropout_p = st["z"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if st.get("cs") == w.speed:      # else the board was restarted with a new speed
        w.speed = sp
    w._refills = [x for x in w._refills if x > w._t]
    return True


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
