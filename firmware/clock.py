"""Time for the agent.

now(): monotonic seconds. On the virtual board the simulated world's clock (accelerated,
so a month passes in under a minute); on an ESP32 time.time(), which the RTC keeps
counting through deep sleep (ticks_ms restarts at every wake, so it cannot be used).
wall(): unix seconds once a `time` downlink set the offset, else None. The offset is kept
by the caller's persisted state (set_offset at boot), so it survives a deep sleep.
ms()/ms_diff(): real milliseconds for transport timeouts (the bridge answers in real time).
"""
import time

from firmware import hal

_world = None
_offset = None


def use_world(w):
    """Drive now() from a simulated World (None: the hardware clock)."""
    global _world
    _world = w


def now():
    w = _world
    if w is not None:
        return w.now()
    return time.time()


def wall():
    if _offset is None:
        return None
    return int(now() + _offset)


def set_wall(unix):
    global _offset
    _offset = unix - now()


def offset():
    return _offset


def set_offset(off):
    global _offset
    _offset = off


ms = hal.ticks_ms
ms_diff = hal.ticks_diff
