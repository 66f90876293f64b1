"""host_tools/ha.py's publisher on a real Mosquitto broker (no Home Assistant): retained
discovery, re-announcement when Home Assistant says "online", the bridge's last will."""
import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from host_tools import registry as reg
from host_tools.bridge import BridgeCore
from host_tools.ha import HomeAssistant
from host_tools.store import Store
from netutil import MOSQUITTO, Broker
from test_bridge_support import DEV, HELLO, Replies, chunk, frame, level, make_registry, wait_for

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")


class Sub:
    def __init__(self, port):
        self.msgs, self.lock = [], threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-sub-%d" % id(self))
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.subscribe("#", qos=1)
        self.c.loop_start()

    def _on(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, m.payload.decode(), m.retain))

    def last(self, topic):
        with self.lock:
            got = [p for t, p, _ in self.msgs if t == topic]
        return got[-1] if got else None

    def count(self, suffix):
        with self.lock:
            return sum(1 for t, _, _ in self.msgs if t.endswith(suffix))

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def world(tmp_path):
    broker = Broker(tmp_path / "mqtt")
    broker.start()
    store = Store(tmp_path / "b.sqlite")
    registry = reg.Registry(make_registry(tmp_path))
    core = BridgeCore(store, registry, [])
    ha = HomeAssistant("mqtt://127.0.0.1:%d" % broker.port, store, registry, bridge_id="b1", silence_s=1.0,
                       tick_s=0.2)
    core.on_message = ha.on_message
    sub = Sub(broker.port)
    yield core, ha, sub, broker, tmp_path
    sub.close()
    ha.stop()
    store.close()
    broker.stop()


CFG = "homeassistant/sensor/%s/remaining/config" % DEV


def test_announce_reannounce_silence_and_last_will(world):
    core, ha, sub, broker, tmp = world
    core.handle_chunk(chunk(frame(1, HELLO)), Replies())     # stored before the publisher starts
    core.handle_chunk(chunk(frame(2, level(480, 48, 12, 96, 6))), Replies())
    ha.start()
    assert wait_for(lambda: sub.last(CFG), 10)
    cfg = json.loads(sub.last(CFG))
    assert cfg["unique_id"] == "consumables_dev1_remaining" and cfg["device"]["model_id"] == "TONER-1"
    assert wait_for(lambda: sub.last("consumables/b1/dev1/level"), 5)
    assert json.loads(sub.last("consumables/b1/dev1/level"))["remaining"] == 480
    assert sub.last("consumables/b1/status") == "online"
    # silent for longer than silence_s (its last frame came before start): offline
    assert wait_for(lambda: sub.last("consumables/b1/dev1/availability") == "offline", 5)
    core.handle_chunk(chunk(frame(3, level(470))), Replies())
    assert wait_for(lambda: sub.last("consumables/b1/dev1/availability") == "online", 5)
    # Home Assistant restarted: it says online, the bridge announces again
    n = sub.count("/remaining/config")
    sub.c.publish("homeassistant/status", "online", qos=1)
    assert wait_for(lambda: sub.count("/remaining/config") > n, 5)
    assert ha.announcements >= 2
    # the bridge dies without a goodbye: the broker publishes its last will
    ha.client._sock.close()          # as a crash does: no DISCONNECT
    ha.client.loop_stop()
    assert wait_for(lambda: sub.last("consumables/b1/status") == "offline", 60)


def test_lowered_consent_clears_retained_level(world):
    core, ha, sub, broker, tmp = world
    ha.start()
    assert wait_for(lambda: sub.last("consumables/b1/status") == "online", 10)
    core.handle_chunk(chunk(frame(1, HELLO)), Replies())
    core.handle_chunk(chunk(frame(2, level(480))), Replies())
    assert wait_for(lambda: sub.last("consumables/b1/dev1/level"), 5)
    core.handle_chunk(chunk(frame(3, {0: 3, 1: 5, 2: 1, 4: 1})), Replies())   # consent_changed -> order-only
    assert wait_for(lambda: sub.last(CFG) == "" and sub.last("consumables/b1/dev1/level") == "", 5)
    assert sub.last("consumables/b1/dev1/consent") == "order-only"
    # a fresh subscriber (Home Assistant after a restart) finds no retained level at all
    late = Sub(broker.port)
    time.sleep(1.0)
    retained = {t for t, p, r in late.msgs if r and p}
    late.close()
    assert not any("/level" in t or "/remaining/" in t for t in retained)
    assert "homeassistant/event/dev1/order/config" in retained


def test_last_order_status_follows_what_was_sent(world):
    core, ha, sub, broker, tmp = world
    ha.start()
    core.handle_chunk(chunk(frame(1, HELLO)), Replies())
    assert wait_for(lambda: sub.last("homeassistant/sensor/dev1/order_status/config"), 10)
    did = core.store.queue_downlink(DEV, "order_status", {"key": "dev1-b1", "status": 2})
    core.store.mark_downlink_sent(did, 7, "test")
    assert wait_for(lambda: sub.last("consumables/b1/dev1/order_status") == "shipped", 10)
