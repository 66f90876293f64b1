"""Time for the agent.

now(): monotonic seconds, never going backwards, not even across a power-on reset.
  Its source is the device's RTC: time.time() on an ESP32, whose RTC timer keeps counting
  through deep sleep and every reset except a power-on reset (power cut, EN button),
  which starts it again at 0 (ESP-IDF, System Time); on the virtual board the simulated
  world's device RTC (World.now(), accelerated, restarting at power-on the same way).
  now() = RTC + base. The base is checkpointed with the last now() (state()); at boot
  restore() raises it when the RTC is behind the last saved now() (a power-on reset), so
  deadlines and the estimator's times saved as now() values stay valid. The power-off
  time itself is unknown until the wall clock comes back: set_wall() then moves now()
  forward by it.
wall(): unix seconds once a `time` downlink set the offset, else None.
ms()/ms_diff(): real milliseconds for transport timeouts (the bridge answers in real time).
"""
import time

from firmware import hal

_world = None
_offset = None    # wall - now()
_base = 0         # now() - RTC


def use_world(w):
    """Drive now() from a simulated World (None: the hardware clock)."""
    global _world
    _world = w


def now():
    w = _world
    return (w.now() if w is not None else time.time()) + _base


def wall():
    if _offset is None:
        return None
    return int(now() + _offset)


def set_wall(unix):
    """A `time` downlink (the bridge answers every hello with one). With an offset known
    from before, a wall clock ahead of now() + offset is time the RTC missed while the
    power was off: now() jumps forward by it (never back)."""
    global _offset, _base
    t = now()
    if _offset is not None:
        lag = int(unix - _offset - t)
        if lag > 0:
            _base += lag
            return
    _offset = unix - t


def state():
    """(base, offset, now) for the checkpoint."""
    return _base, _offset, now()


def restore(st):
    """At boot, from state() as checkpointed (None: first boot)."""
    global _base, _offset
    if not st:
        _base, _offset = 0, None
        return
    _base, _offset, last = st
    t = now()
    if t < last:          # the RTC restarted: a power-on reset since the checkpoint
        _base += last - t


ms = hal.ticks_ms
ms_diff = hal.ticks_diff
