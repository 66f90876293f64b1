"""Sensor drivers. Every driver: setup() once, read() -> reading or None, never raises
for a bad read. Modules are imported only when the board file asks for them.

  build(board)         sensor from board["sensor"] (type: hx711 | vl53l0x |
                       ultrasonic | analog | sim)
  build_button(board)  debounced Button from board["pins"]["button"], or None
"""
TYPES = ("hx711", "vl53l0x", "ultrasonic", "analog", "sim")


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
    if t == "hx711":
        from firmware.sensors import hx711 as m
    elif t == "vl53l0x":
        from firmware.sensors import vl53l0x as m
    elif t == "ultrasonic":
        from firmware.sensors import ultrasonic as m
    elif t == "analog":
        from firmware.sensors import analog as m
    elif t == "sim":
        from firmware.sensors import sim as m
    else:
        raise ValueError("unknown sensor type: %s" % t)
    return m.create(s)


def build_button(board):
    pin = board.get("pins", {}).get("button")
    if pin is None:
        return None
    from firmware.sensors import button
    return button.create(pin, board.get("button"))
