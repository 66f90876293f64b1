"""Control file of the simulated world: how a host process (HIL tests, the
`consumables board` tool) injects events into the virtual board.

The world polls the file (World cfg "ctl", default "ctl" in the board's flash
directory = the unix port's cwd) at most every "ctl_ms" real milliseconds. It
renames it to "<ctl>.work", executes it line by line and deletes it. A host
should write "<ctl>.tmp" and rename it to "<ctl>" (wait if "<ctl>" still exists).
One command per line, '#' starts a comment, unknown lines are ignored:

  button [N]      press the button N times (default 1)
  refill [Q]      refill to Q units (default: capacity)
  flash [N]       the flash has N more free bytes (writes beyond: ENOSPC); no N: no limit
  level Q         set the true remaining quantity
  rate R          consumption per weekday (units/day)
  speed S         simulated seconds per real second
  advance S       jump the simulated clock forward S seconds
  noise F         sensor noise (fraction of capacity)
  spike P         spike probability per reading
  dropout P       dropout probability per reading
  sensor MODE     the simulated chip behind the driver (an hx711 board): ok, stuck (DOUT held
                  low: a dead or unpowered chip), float (DOUT undriven: wire off)

After a command that was understood the world's state file (if any) is saved.
"""
import os
from firmware.compat import const

# slots of World.data, as in simworld.py
_NOISE = const(0)   # then spike, dropout
_LEVEL = const(4)
_ISEC = const(5)    # slot of World.ints: the clock


def run(w, line=None):
    """Run one control line on World `w` (-> True if it was understood), or with no
    line the control file, renamed, executed and deleted (-> commands understood)."""
    if line is None:
        work = w.ctl + ".work"
        try:
            os.rename(w.ctl, work)
        except OSError:
            return 0   # no file: the common case, one failed rename
        try:
            with open(work) as f:
                todo = f.readlines()
        finally:
            os.remove(work)
    else:
        todo = (line,)
    s = w.data
    n = 0
    for x in todo:
        p = x.split("#")[0].split()
        if len(p) == 2 and p[0] == "sensor" and getattr(w, "chip", None) is not None:
            w.chip.mode = p[1]
            n += 1
            continue
        try:
            k = "button refill flash level rate speed advance noise spike dropout".split().index(p[0])
            # the argument: optional for the first three, else required (IndexError)
            a = float(p[1]) if len(p) > 1 or k > 2 else None
            if k == 0:
                w.press(int(a) if a else 1)
            elif k == 2:
                from firmware.sensors import simstate
                simstate.flash(w, a)
            elif k == 5:
                w.speed = a
            elif k == 6:
                w.advance(a)
            elif k > 6:
                s[_NOISE + k - 7] = a
            else:
                w.level(w.ints[_ISEC])   # consumption up to now at the old values first
                if k == 1:
                    w.refill(a)
                elif k == 3:
                    s[_LEVEL] = a
                else:
                    w.rate = a
            n += 1
        except (ValueError, TypeError, IndexError):
            pass
    if n and w.state:
        from firmware.sensors import simstate
        simstate.save(w)
    return n if line is None else n > 0
