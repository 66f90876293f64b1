"""What an agent keeps in RTC memory through deep sleep (loaded only to sleep and to wake).

Deep sleep powers the RAM off; RTC slow memory (machine.RTC().memory(), 2048 bytes on the
ESP32 port) survives it, but not a power-on reset. Without this the filter chain starts
empty at every wake (the median of one reading, an outlier filter with no baseline,
quality always 10) and the count of failed reads restarts at 0, so `sensor_fault` is never
reached on a board that reads once per wake. Flash is not used: a write per wake would wear it.

Layout: b"RM1", then array("d") of: the failed-read count, then every number of every
filter stage and of the chain in a fixed order (attribute names sorted; arrays whole;
None as NaN; bools as 0/1; a nested filter recursed). The same board file builds the same
chain, so the order matches; anything else (another length, no magic) is ignored.
"""
from array import array

from firmware import hal

_MAGIC = b"RM1"


def _walk(o, out):
    d = o.__dict__
    for k in sorted(d):
        v = d[k]
        if isinstance(v, array):
            out.extend(v)
        elif isinstance(v, (bool, int, float)) or v is None:
            out.append(float("nan") if v is None else float(v))
        elif hasattr(v, "__dict__") and not isinstance(v, (list, tuple)):
            _walk(v, out)


def _put(o, it):
    d = o.__dict__
    for k in sorted(d):
        v = d[k]
        if isinstance(v, array):
            for i in range(len(v)):
                v[i] = next(it)
        elif isinstance(v, bool):          # (setattr: MicroPython's __dict__ is read-only)
            setattr(o, k, next(it) != 0)
        elif isinstance(v, int):
            setattr(o, k, int(next(it)))
        elif isinstance(v, float) or v is None:     # None: a value not known yet
            x = next(it)
            setattr(o, k, None if x != x else x)
        elif hasattr(v, "__dict__") and not isinstance(v, (list, tuple)):
            _put(v, it)


def _numbers(a):
    out = array("d", [a.fails])
    for s in a.chain.stages:
        _walk(s, out)
    _walk(a.chain, out)
    return out


def save(a):
    hal.RTC().memory(_MAGIC + bytes(_numbers(a)))


def load(a):
    """Restore after a deep-sleep wake; False when RTC memory holds nothing usable."""
    m = hal.RTC().memory()
    if not m or m[:3] != _MAGIC or len(m) - 3 != 8 * len(_numbers(a)):
        return False
    it = iter(array("d", m[3:]))
    a.fails = int(next(it))
    for s in a.chain.stages:
        _put(s, it)
    _put(a.chain, it)
    return True
