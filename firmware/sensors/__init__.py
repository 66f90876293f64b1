"""Sensor drivers. Every driver: setup() once, read() -> reading or None, never raises
for a bad read. Modules are imported only when the board file asks for them.

  build(board)         sensor from board["sensor"] (type: hx711 | vl53l0x |
                       ultrasonic | analog | sim)
  build_button(board)  debounced Button from board["pins"]["button"], or None
"""
import sys

TYPES = "hx711 vl53l0x ultrasonic analog sim"   # one string: one constant, not five qstrs


def insort(b, k, r):
    """Insert r into the sorted b[:k] of a preallocated buffer (no allocation); -> k + 1.
    The drivers average a few conversions this way before trimming or taking the median."""
    i = k
    while i > 0 and b[i - 1] > r:
        b[i] = b[i - 1]
        i -= 1
    b[i] = r
    return k + 1


def build(board):
    s = board["sensor"]
    t = s["type"]
    if t not in TYPES.split():
        raise ValueError("unknown sensor type: %s" % t)
    # imported by name, so the other drivers' names never become qstrs (never freed)
    name = "firmware.sensors." + t
    __import__(name)
    return sys.modules[name].create(s)


def build_button(board):
    pin = board.get("pins", {}).get("button")
    if pin is None:
        return None
    from firmware.sensors import button
    return button.create(pin, board.get("button"))
