"""Control file of the simulated world: how a host process (HIL tests, the
`consumables board` tool) injects events into the virtual board.

The world polls the file (World cfg "ctl", default "ctl" in the board's flash
directory = the unix port's cwd) at most every "ctl_ms" real milliseconds. It
renames it to "<ctl>.work", executes it line by line and deletes it. A host
should write "<ctl>.tmp" and rename it to "<ctl>" (wait if "<ctl>" still exists).
One command per line, '#' starts a comment, unknown lines are ignored:

  button [N]      press the button N times (default 1)
  refill [Q]      refill to Q units (default: capacity)
  level Q         set the true remaining quantity
  rate R          consumption per weekday (units/day)
  speed S         simulated seconds per real second
  advance S       jump the simulated clock forward S seconds
  noise F         sensor noise (fraction of capacity)
  spike P         spike probability per reading
  dropout P       dropout probability per reading
  flash [N]       the flash has N more free bytes (writes beyond: ENOSPC); no N: no limit
"""
import os


def poll(w):
    """Execute and delete the control file of World `w`; returns commands run."""
    work = w.ctl + ".work"
    try:
        os.rename(w.ctl, work)
    except OSError:
        return 0   # no file: the common case, one failed rename
    n = 0
    try:
        with open(work) as f:
            for line in f:
                if command(w, line):
                    n += 1
    finally:
        try:
            os.remove(work)
        except OSError:
            pass
    return n


def command(w, line):
    """Run one control line on World `w`; True if it was understood."""
    i = line.find("#")
    if i >= 0:
        line = line[:i]
    p = line.split()
    if not p:
        return False
    cmd = p[0]
    try:
        a = float(p[1]) if len(p) > 1 else None
        if cmd == "button":
            w.press(int(a) if a else 1)
        elif cmd == "refill":
            w.settle()
            w.refill(a)
        elif cmd == "level":
            w.settle()
            w._level = a
        elif cmd == "rate":
            w.settle()
            w.rate = a
        elif cmd == "speed":
            w.speed = a
        elif cmd == "advance":
            w.advance(a)
        elif cmd == "flash":
            from firmware.sensors import simstate
            simstate.flash(w, a)
        elif cmd in ("noise", "spike", "dropout"):
            setattr(w, {"noise": "noise", "spike": "spike_p", "dropout": "dropout_p"}[cmd], a)
        else:
            return False
    except (ValueError, TypeError, IndexError):
        return False
    return True
