"""Boot: `/main.py` calls run(). Reads /board.json (firmware.board.load) and
/provision.json (firmware.provision.load); on the virtual board also /sim.json (speed,
seed of the simulated world, written by the virtual board tool). Then loops forever:
a sample every sample_s (clock.now(), accelerated on the virtual board), the fast part
(button, downlinks, one frame out) in between; on a deep_sleep board it waits briefly
for acks, checkpoints and deep-sleeps until the next sample.
"""
import gc
import sys

from firmware import clock, hal, store
from firmware.compat import const

_IDLE_MS = const(50)      # service period between samples (button debounce needs >= 2 polls)


def boot(root="/", transport=None, verbose=True):
    """Build the agent from root's files; transport: the agent's link (default: from
    provision.json), e.g. the memory benchmark's in-process loopback bridge. Once per
    reset: it drops itself from this module when done (its bytecode, ~350 B, freed)."""
    # Order matters in a 64 KB heap. The code first, while the heap is empty: ~40 KB that
    # stays, packed at the bottom. Then what is read from flash (board, provisioning,
    # checkpoint), whose garbage leaves holes only above it.
    from firmware.agent import Agent
    gc.collect()
    from firmware import board as boardfile, provision
    b = boardfile.load(root + "board.json")
    if hal.SIM:
        sim = store.load(root + "sim.json")
        if sim:
            w = dict(b.get("world") or {})
            w.update(sim)
            b["world"] = w
        clock.use_world(hal.world(b))
    prov = provision.load(root + "provision.json")
    del boardfile, provision
    _free("board", "provision")     # only needed at boot
    b.pop("description", None)      # ~1 KB of the board file the device never reads
    b.pop("world", None)
    gc.collect()
    # The estimator's seven ring arrays (~2.4 KB, 336-byte blocks) are the largest objects
    # the agent keeps: built before the other parts, while the top of the heap is free.
    # A reboot's checkpoint is read after them (2.5 KB of base64 text, then garbage) and
    # filled in: read first, the default board booted again from it in neither 66K nor 68K
    # (now 64K, with the _drop()s below: tests/host/test_memory32.py).
    from firmware import assemble
    est = assemble.estimator(None, b)
    ck = assemble.checkpoint(root)
    est = assemble.estimator(ck.pop("est", None), b, est)   # its state out of ck: freed now
    _drop(assemble, "checkpoint", "restore", "estimator")
    a = Agent(b, prov, root, transport=transport, verbose=verbose, est=est, ck=ck, start=False)
    _drop(assemble, "parts")
    name = b.get("name", "?")
    del est, ck, b, prov
    gc.collect()
    assemble.finish(a)              # the rest of the parts, with the board file freed
    del assemble
    _free("sensors", "assemble")    # boot-only code: the sensor builders, the agent's parts
    gc.collect()
    a.start(name)                   # boot counter and hello
    # once per reset: this function's bytecode is freed with it (the module stays, for run())
    globals().pop("boot", None)
    gc.collect()
    print("[main] %s on %s, consent %d, boot %d, free %d" % (
        a.dev, name, a.policy.consent, a.boot, gc.mem_free()))
    return a


def _drop(m, *names):
    # A boot-only function of module m, once run: its bytecode freed now, not with m
    # after the boot (runs of free blocks the boot's next objects need, in a heap that
    # loading the code left in 1- and 2-block holes)
    for n in names:
        delattr(m, n)


def _free(*names):
    import firmware
    for n in names:
        sys.modules.pop("firmware." + n, None)
        try:
            delattr(firmware, n)
        except (AttributeError, KeyError):   # (MicroPython: KeyError for a missing one)
            pass


def run(root="/"):
    from firmware import power         # the escapes from the watchdog, dropped once run
    ok = power.start(root)
    del power
    _free("power", "board")
    if not ok:
        return
    a = boot(root)
    while True:
        if a.sample.due(clock.now()):
            a.cycle()
            gc.collect()
            if a.deep:
                from firmware import power   # deep-sleep boards only: not in RAM on others
                power.sleep(a)
                continue
        else:
            a.service()
        hal.sleep_ms(_IDLE_MS)
