# CPython stand-ins for the MicroPython-only names the firmware uses, so its modules
# import on the host too (host tests, tools that run the simulated world, type checks).
# Imported only where MicroPython's own import fails, so a board never loads this file:
# a def or a lambda in a module a board loads costs RAM there even if never run.
import time
import traceback


def const(x):
    return x


def print_exception(e, file=None):
    traceback.print_exception(type(e), e, e.__traceback__, file=file)


def ticks_ms():
    return int(time.monotonic() * 1000)


def ticks_us():
    return int(time.monotonic() * 1000000)


def ticks_diff(a, b):
    return a - b


def ticks_add(a, b):
    return a + b


def sleep_ms(ms):
    time.sleep(ms / 1000)


def sleep_us(us):
    time.sleep(us / 1000000)
