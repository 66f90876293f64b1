"""Finding 4 of issue 11 (docs/THREAT_MODEL.md T19): the MQTT command topic took any type.

`{"type": "ack", "seq": 77}` reached the device as a valid ack for a message the bridge
never stored (the device deletes what an ack covers: an order could vanish that way); a
`level` command killed the housekeeping thread (later commands for the device hung);
deeply nested JSON raised RecursionError on paho's network thread. Now only the
operator's downlink types are queued, every refusal is counted and answered on
PREFIX/DEVICE/cmd/result, and a watchdog restarts a worker thread that died anyway.
"""
import json
import threading
import time
from types import SimpleNamespace

import pytest

from host_tools import registry as reg
from host_tools.bridge import Bridge
from host_tools.uplinks import MqttUplink, make_uplink
from protocol import messages as M, wire
from test_bridge_support import DEV, HELLO, Replies, frame, make_registry, wait_for
from test_uplinks import MOSQUITTO, Broker, _subscriber  # noqa: F401  (fixture helpers)


def _quiet(*a, **k):
    pass


@pytest.fixture
def bridge(tmp_path):
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(make_registry(tmp_path)), [], [], log=_quiet).start()
    b.watch_every = 0.1
    r = Replies()
    assert b.core.handle_chunk(wire.unframe(frame(0, HELLO)), r, "udp:10.0.0.7:4210") == "stored"
    r.clear()
    b.device_replies = r
    yield b
    b.stop()


def _mqtt(bridge):
    u = MqttUplink("mqtt://127.0.0.1:1/shop")          # never connected: the handler alone
    u.on_command = getattr(bridge.core, "command", bridge.core.queue_command)   # queue_command: before the fix
    answers = []
    u.client = SimpleNamespace(publish=lambda topic, payload, qos=0: answers.append((topic, json.loads(payload))))
    u.answers = answers
    return u


def _publish(u, payload, device=DEV):
    u._on_message(None, None, SimpleNamespace(topic="shop/%s/cmd" % device, payload=payload))


def test_ack_from_the_command_topic_never_reaches_the_device(bridge):
    u = _mqtt(bridge)
    _publish(u, json.dumps({"type": "ack", "seq": 77}).encode())
    time.sleep(0.5)                                    # housekeeping delivers every 0.2 s
    assert bridge.device_replies == []                 # no ack the bridge did not make
    assert bridge.store.pending_downlinks(DEV) == []
    assert bridge.count["bad_commands"] == 1
    assert u.answers[-1][0] == "shop/%s/cmd/result" % DEV and u.answers[-1][1]["ok"] is False


def test_an_ack_row_put_in_the_database_by_hand_is_dropped_not_sent(bridge):
    bridge.store.queue_downlink(DEV, "ack", {"seq": 77})
    assert wait_for(lambda: bridge.store.pending_downlinks(DEV) == [])
    assert bridge.device_replies == [] and bridge.count["bad_commands"] == 1


@pytest.mark.parametrize("doc", [{"type": "level", "remaining": 5, "fill_pct": 5, "quality": 1},
                                 {"type": "hello", "proto": 2}], ids=["level", "hello"])
def test_an_uplink_type_as_command_does_not_stop_later_commands(bridge, doc):
    u = _mqtt(bridge)
    _publish(u, json.dumps(doc).encode())
    time.sleep(0.5)
    _publish(u, json.dumps({"type": "config", "report_s": 60}).encode())
    assert wait_for(lambda: [p for _, _, p in bridge.device_replies.decoded()] == [{0: M.CONFIG, 2: 60}])
    assert bridge._house.is_alive() and bridge.count["bad_commands"] >= 1
    assert [a["ok"] for _, a in u.answers] == [False, True]


def test_deeply_nested_json_is_counted_not_raised_on_the_network_thread(bridge):
    u = _mqtt(bridge)
    _publish(u, b"[" * 100000 + b"]" * 100000)          # RecursionError in json.loads
    _publish(u, b'{"type": "config", "report_s": ' + b"[" * 50000 + b"]" * 50000 + b"}")
    assert bridge.count["bad_commands"] == 2
    _publish(u, json.dumps({"type": "time", "unix": 1700000000}).encode())
    assert wait_for(lambda: [p for _, _, p in bridge.device_replies.decoded()] == [{0: M.TIME, 1: 1700000000}])


def test_bad_device_ids_on_the_command_topic_are_refused(bridge):
    u = _mqtt(bridge)
    for dev in ("DEV1", "a\nb", "x" * 30, ""):
        _publish(u, json.dumps({"type": "config", "report_s": 60}).encode(), device=dev)
    assert bridge.count["bad_commands"] == 4 and bridge.store.pending_downlinks() == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_watchdog_restarts_a_dead_housekeeping_thread(bridge):
    real, calls = bridge.core.deliver_pending, []

    def dies_once():
        if not calls:
            calls.append(1)
            raise SystemExit("simulated death of the thread")   # no handler catches this
        return real()

    bridge.core.deliver_pending = dies_once
    assert wait_for(lambda: calls)
    assert wait_for(lambda: bridge.count["threads_restarted"] == 1)
    bridge.store.queue_downlink(DEV, "config", {"report_s": 90})
    assert wait_for(lambda: [p for _, _, p in bridge.device_replies.decoded()] == [{0: M.CONFIG, 2: 90}])


def test_ack_on_a_real_broker_is_answered_and_never_queued(tmp_path):
    if not MOSQUITTO:
        pytest.skip("mosquitto binary not found (apt-get install mosquitto)")
    broker = Broker(tmp_path)
    broker.start()
    sub, got = _subscriber(broker.port, "shop/+/cmd/result")
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(make_registry(tmp_path)),
               [make_uplink("mqtt://127.0.0.1:%d/shop" % broker.port)], [], log=_quiet).start()
    try:
        r = Replies()
        b.core.handle_chunk(wire.unframe(frame(0, HELLO)), r, "udp:10.0.0.7:4210")
        assert wait_for(lambda: b.forwarders[0].uplink.connected.is_set())
        sub.publish("shop/%s/cmd" % DEV, json.dumps({"type": "ack", "seq": 77}), qos=1)
        sub.publish("shop/%s/cmd" % DEV, b"[" * 100000, qos=1)
        sub.publish("shop/%s/cmd" % DEV, json.dumps({"type": "config", "report_s": 60}), qos=1)
        assert wait_for(lambda: len(got) == 3, timeout=10)
        assert [d["ok"] for _, d in got] == [False, False, True]
        assert wait_for(lambda: {0: M.CONFIG, 2: 60} in [p for _, _, p in r.decoded()])
        assert {0: M.ACK, 1: 77} not in [p for _, _, p in r.decoded()]
    finally:
        b.stop()
        sub.loop_stop()
        sub.disconnect()
        broker.stop()
