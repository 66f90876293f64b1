"""Checkpoints of older firmware, brought to the current layout (boot-only, loaded only
when an older checkpoint is found: firmware/assemble.py estimator())."""


def estimator(state):
    """An estimator checkpoint of layout v3 or v4 as v5 (firmware/estimator.py)."""
    from array import array
    from binascii import a2b_base64, b2a_base64
    st = state
    if st[0] == 3:
        # firmware 0.3.0: the metered total was a float in units in slot 20;
        # v4 keeps it as an int of milli-units after the episode counters and
        # only the uncounted fraction in slot 20
        s = array("d", a2b_base64(st[6]))
        n = s[20] * 1000
        s[20] = n - int(n)
        st = [4] + st[1:6] + [int(n), b2a_base64(bytes(s)).strip()] + st[7:]
    # v4 -> v5: the state array grew from 35 slots to 67 (the reading's
    # quantum, unknown: the capacity; the learnt band, the bad-input count and
    # the last week's forecasts: none yet)
    s = array("d", a2b_base64(st[7]))
    s.extend(array("d", bytes(8 * max(0, 67 - len(s)))))   # (slots after 67 came later
    # within v5: assemble.restore() keeps a shorter array's missing slots at their start)
    s[35] = st[1]
    state = [5] + st[1:7] + [b2a_base64(bytes(s)).strip()] + st[8:]
    return state
