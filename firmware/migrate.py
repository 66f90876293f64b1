"""Older estimator checkpoints, brought to the current layout (v5) at boot: imported by
firmware/assemble.py only when a checkpoint is older, so a board never keeps this code's
bytes in RAM otherwise (its boot is the heap's peak)."""


def estimator_v5(st):
    """A v3 or v4 estimator checkpoint as v5."""
    if st[0] == 3:
        st = _v3(st)
    return _v4(st)


def _v3(st):
    """Firmware 0.3.0's estimator checkpoint (v3) as v4: the metered total was a float in
    units in slot 20 of the state array; v4 keeps it as an int of milli-units after the
    episode counters and only the uncounted fraction in slot 20."""
    from array import array
    from binascii import a2b_base64, b2a_base64
    s = array("d", a2b_base64(st[6]))
    n = s[20] * 1000
    s[20] = n - int(n)
    return [4] + st[1:6] + [int(n), b2a_base64(bytes(s)).strip()] + st[7:]


def _v4(st):
    """Firmware 0.3.x's v4 checkpoint as v5: the state array grew from 35 slots to 67
    (the reading's quantum, unknown: the capacity; the learnt band, the bad-input count
    and the last week's forecasts: none yet)."""
    from array import array
    from binascii import a2b_base64, b2a_base64
    s = array("d", a2b_base64(st[7]))
    s.extend(array("d", bytes(8 * (67 - len(s)))))
    s[35] = st[1]
    return [5] + st[1:7] + [b2a_base64(bytes(s)).strip()] + st[8:]
