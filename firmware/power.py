"""Power states: safe boot, deep sleep and the wake from it. Loaded only for these
(main.run frees it after the safe boot and imports it again only on deep-sleep boards), so
an always-on board has none of it in RAM.

Safe boot: the watchdog (machine.WDT) cannot be stopped once started, and it outlives
Ctrl-C and a soft reset (MicroPython's ESP32 port: the task watchdog stays subscribed), so
a REPL session or a deploy after interrupting the agent would be reset under the user's
hands. start() (the safe-boot window, before the agent starts) is the way out.

Deep sleep: sleep(a) delivers, checkpoints, keeps in RTC memory what RAM loses, puts the
sensor to sleep, arms the button and sleeps; wake(a) restores it.

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

from firmware import clock, hal
from firmware.compat import const

_MAGIC = b"RM1"
_IDLE_MS = const(50)
_ACK_WAIT_MS = const(3000)  # how long to wait for the bridge to ack before sleeping ...
_LINK_WAIT_MS = const(8000) # ... and for the link first (an ESP32's Wi-Fi join + DHCP: 1-4 s)
_SAFE_BOOT_MS = const(2000) # board power.safe_boot_ms overrides it (the virtual boards: 300)


def sleep(a):
    # Awake only while there is something to deliver: up to _LINK_WAIT_MS for the link,
    # then _ACK_WAIT_MS from the moment it is up (the first frame leaves then).
    t0 = hal.ticks_ms()
    wait = _LINK_WAIT_MS
    up = False
    while len(a.outbox) and hal.ticks_diff(hal.ticks_ms(), t0) < wait:
        if not up and a.tr.ready():
            up = True
            t0, wait = hal.ticks_ms(), _ACK_WAIT_MS
        a.service()
        hal.sleep_ms(_IDLE_MS)
    a.checkpoint()
    save(a)                     # RAM is lost in deep sleep: the filters go to RTC memory
    if a.button is not None:
        hal.wake_on_button(a.button.pin)   # a press wakes the board (EXT0/GPIO)
    s = getattr(a.sensor, "sleep", None)
    if s is not None:
        s()     # the chip in its lowest-power state, its pins held (HX711: SCK high)
    hal.deepsleep(int(a.sample.left(clock.now()) * 1000))


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


def wake(a):
    """After a deep-sleep wake: what RTC memory kept, and the press that woke the board is
    a press (machine.wake_reason() gives ESP-IDF's esp_sleep_source_t: EXT0 (2) and EXT1
    (3) on an ESP32/S3, GPIO (7) on a C3)."""
    load(a)
    if hal.wake_reason() in (2, 3, 7):
        a.press()


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


def start(root="/"):
    """The escapes from an agent whose watchdog (machine.WDT: once started it cannot be
    stopped, and it outlives Ctrl-C and a soft reset) would reset a board under a REPL
    session or a deploy. After a reset other than a deep-sleep wake, main.py waits
    _SAFE_BOOT_MS before anything starts a watchdog: a Ctrl-C in that window (mpremote
    after `reset`, deploy does so) leaves the REPL free. A button held through the
    window, or a file /SAFE, is safe mode: the agent does not run at all.
    Returns True when the agent may start."""
    if hal.reset_cause() == hal.DEEPSLEEP_RESET:
        return True                  # a wake: the board must sleep again at once
    try:
        import os
        os.stat(root + "SAFE")
        print("[main] safe mode: %sSAFE exists, the agent does not run" % root)
        return False
    except OSError:
        pass
    from firmware import board as boardfile
    b = boardfile.load(root + "board.json")     # (main.run frees this module afterwards)
    pin = (b.get("pins") or {}).get("button")
    win = (b.get("power") or {}).get("safe_boot_ms", _SAFE_BOOT_MS)
    del boardfile, b
    print("[main] safe-boot window %d ms: Ctrl-C for a REPL without the agent" % win)
    held = pin is not None
    p = hal.Pin(pin, hal.Pin.IN, hal.Pin.PULL_UP) if held else None
    t0 = hal.ticks_ms()
    while hal.ticks_diff(hal.ticks_ms(), t0) < win:
        if held and p.value():       # active low: released
            held = False
        hal.sleep_ms(_IDLE_MS)
    if held:
        print("[main] safe mode: the button was held through the window")
        return False
    return True
