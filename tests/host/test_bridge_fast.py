"""The bridge's fast paths against their reference code: same output for every input."""
import json

from hypothesis import given, settings, strategies as st

from host_tools import bridge

values = st.one_of(st.text(max_size=20), st.integers(-2 ** 70, 2 ** 70), st.booleans(), st.none(),
                   st.floats(), st.lists(st.integers(0, 9), max_size=3), st.binary(max_size=4))
keys = st.one_of(st.sampled_from(["link", "device", "seq", "type", "uplink", "ts", "event"]), st.text(max_size=8))


def reference(ts, event, fields):
    try:
        return json.dumps(dict(ts=ts, event=event, **fields), default=str)
    except TypeError as e:
        return ("TypeError", str(e))


def fast(ts, event, fields):
    try:
        return bridge.json_line(ts, event, fields)
    except TypeError as e:
        return ("TypeError", str(e))


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.floats(), st.integers(0, 2 ** 40)), st.text(max_size=12), st.dictionaries(keys, values, max_size=6))
def test_json_line_same_as_json_dumps(ts, event, fields):
    assert fast(ts, event, fields) == reference(ts, event, fields)


def test_json_line_per_message_rows():
    row = {"link": "udp:127.0.0.1:4210", "device": "printer-\u00e9\"01", "seq": 2 ** 40 - 1, "type": "level"}
    for _ in range(2):   # the second time from the cache of encoded strings
        line = bridge.json_line(1764650000.123, "frame", row)
        assert line == json.dumps(dict(ts=1764650000.123, event="frame", **row))
        assert json.loads(line)["device"] == row["device"]


def test_json_line_cache_is_bounded():
    for i in range(60000):
        bridge.json_line(1.0, "frame", {"device": "d%d" % i})
    assert len(bridge._JSON_STR) <= 50001
