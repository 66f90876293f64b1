"""Safe boot (firmware/main.py runs check() first, then drops this module).

The watchdog (machine.WDT) cannot be stopped once started, and it outlives Ctrl-C and a
soft reset (MicroPython's ESP32 port: the task watchdog stays subscribed), so a REPL
session or a deploy after interrupting the agent would be reset under the user's hands.
"""
from firmware import hal
from firmware.compat import const

_IDLE_MS = const(50)
_SAFE_BOOT_MS = const(2000)  # board power.safe_boot_ms overrides it (the virtual boards: 300)


def check(root="/"):
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
