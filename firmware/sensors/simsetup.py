"""How a World (simworld.py) is built from its config; imported by World() and dropped
again, so the world keeps none of this code in the agent's heap. Slots as in simworld.py."""
from array import array
try:
    from time import ticks_ms
except ImportError:  # CPython
    from firmware.cpython import const, ticks_ms  # noqa: F401

from firmware.sensors.simworld import uniform

_LEVEL = const(4)
_CAP = const(7)
_WON = const(9)
_WOFF = const(10)
_RAFTER = const(13)
_CTLMS = const(14)
_SPEED = const(15)
_RPD = const(8)
_OH0 = const(21)
_OH1 = const(22)
_NORM = const(23)
_PEND = const(27)
_DOWN = const(28)
_N = const(30)
_ISEED = const(0)
_IRNG = const(1)
_ILAST = const(3)
_ICTL = const(4)
_ISEC = const(5)
_IMS = const(6)
_IT = const(7)
_IRI = const(8)
_IRTC = const(9)
_IN = const(10)
_DAY = const(86400)
_M32 = const(0xFFFFFFFF)


def init(w, c, button_pin):
    # config key (or "-") and default of each slot, in slot order; then "refills"
    k = ("noise spike_p dropout_p start_s level - - capacity rate_per_day office off weekend "
         "jitter refill_after_days ctl_ms speed - - - refills").split()
    r = sorted(c.get(k[-1], ()))
    s = w.data = array("d", range(_N))
    for i, v in enumerate("0 0 0 0 0 inf 0 100 10 1 .05 .1 .5 inf 250 1 .2 .3 4294967296".split()):
        x = c.get(k[i])
        s[i] = float(v if x is None else x)
    if c.get("level") is None:
        s[_LEVEL] = s[_CAP]
    n = w.ints = array("I", range(_IN + len(r)))
    n[_ISEC] = n[_IT] = int(s[3])     # start_s
    n[_IMS] = n[_IRTC] = 0
    s[_RAFTER] *= _DAY
    n[_IRI] = _IN
    for i in range(len(r)):
        n[_IN + i] = int(float(r[i]) * _DAY + 0.5)
    x = n[_ISEED] = int(c.get("seed", 1)) & _M32
    n[_IRNG] = x ^ 0xA5A5A5A5      # the sensor's stream starts hashed like an hour below
    uniform(w, _IRNG)
    n[_IRNG] = n[_IRNG] * 0x2545F491 & _M32
    oh = c.get("office_hours", (8, 18))
    s[_OH0] = a = int(oh[0])
    s[_OH1] = b = int(oh[1])
    s[_NORM] = (b - a) * s[_WON] + (24 - (b - a)) * s[_WOFF]
    n[_ILAST] = ticks_ms()
    # the first now() reads the control file: a board that wakes from deep sleep for a
    # few ms (a new World each time) must still see what the host wrote
    n[_ICTL] = ticks_ms() - int(s[_CTLMS]) & 0x3FFFFFFF
    s[_PEND] = s[_DOWN] = 0
    w.capacity = s[_CAP]
    w.rate = s[_RPD]
    w.speed = s[_SPEED]
    w.presses = 0        # total presses injected
    w.refill_count = 0
    w.button_pin = c.get("button_pin", button_pin)
    w.ctl = c.get("ctl", "ctl")
    w.state = c.get("state")
    if w.state:
        from firmware.sensors import simstate
        simstate.boot(w)
