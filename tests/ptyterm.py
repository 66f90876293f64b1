"""A terminal for a program under test: the test holds a pty's master end and reads it
as a terminal would, also while the program exits (a full pty blocks the program's next
write, which is then the test's fault, not the program's)."""
import os
import select
import time


def read_until(fd, done, timeout, out=b""):
    """Read fd until done(out) or timeout s; returns out and what was read after it."""
    end = time.monotonic() + timeout
    while not done(out) and time.monotonic() < end:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                out += os.read(fd, 65536)
            except OSError:      # the far end closed
                break
    return out


def drain_until_exit(fd, proc, timeout, out=b""):
    """Keep reading fd until proc has exited or timeout s; returns out and what was read."""
    end = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < end:
        if select.select([fd], [], [], 0.05)[0]:
            try:
                out += os.read(fd, 65536)
            except OSError:
                pass
    return out
