"""MQTT discovery against a REAL Home Assistant core (homeassistant==2025.4.4, tests/ha/setup).

mosquitto, then `hass -c DIR` (onboarded and given its MQTT integration through the REST
API, no YAML for MQTT, no internet), then the bridge with --ha, fed real frames over UDP
by two devices: toner-01 at consent "full", tank-02 at consent "order-only". Read back
from Home Assistant's REST API: one device per board with its entities and states, the
unit and device class from the hello, the forecast as a timestamp, diagnostics, the low
soon binary sensor, no level entity for the order-only device, "unavailable" once a
device is silent and when the bridge stops, and removal when a device leaves the
registry. About a minute here (hass starts in 10-30 s).
"""
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hacore import HomeAssistant, ci, missing  # noqa: E402
from host_tools import registry as reg  # noqa: E402
from netutil import MOSQUITTO, Broker, free_port  # noqa: E402
from protocol import messages as M, wire  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
K1, K2 = bytes(range(32)), bytes(range(50, 82))
HELLO = {0: M.HELLO, 1: 2, 2: "0.3.0", 3: "virtual", 4: "TONER-1", 5: "TN-2420", 6: 1000, 7: 2, 9: M.CONSENT_FULL}
TANK = {0: M.HELLO, 1: 2, 2: "0.3.0", 3: "esp32-devkitc", 4: "PROPANE-11", 6: 11000, 7: 0, 9: M.CONSENT_ORDER_ONLY}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    why = missing() or (None if MOSQUITTO else "mosquitto not installed")
    if why:
        if ci():
            pytest.fail(why)
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("ha")
    broker = Broker(tmp / "mqtt")
    broker.start()
    hass = HomeAssistant(tmp / "hass", free_port())
    try:
        hass.start().onboard().add_mqtt("127.0.0.1", broker.port)
        yield tmp, broker, hass
    finally:
        hass.stop()
        broker.stop()


class BridgeProc:
    def __init__(self, tmp, broker, silence=3.0):
        self.tmp, self.udp = tmp, free_port(socket.SOCK_DGRAM)
        self.registry = tmp / "registry.json"
        reg.add_device(self.registry, "toner-01", K1.hex())
        reg.add_device(self.registry, "tank-02", K2.hex())
        self.log = open(tmp / "bridge.log", "wb")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "bridge", "--listen", "udp://127.0.0.1:%d" % self.udp,
             "--uplink", "jsonl:%s" % (tmp / "up.jsonl"), "--registry", str(self.registry),
             "--db", str(tmp / "b.sqlite"), "--ha", "mqtt://127.0.0.1:%d" % broker.port,
             "--ha-bridge-id", "testbridge", "--ha-silence", str(silence), "--print-every", "0"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(3)
        self.seq = {}

    def send(self, dev, key, payload):
        s = self.seq[dev] = self.seq.get(dev, 0) + 1
        for _ in range(20):   # stop-and-wait, as a device: resend until acked
            self.sock.sendto(wire.pack(key, dev, s, payload), ("127.0.0.1", self.udp))
            try:
                self.sock.recvfrom(512)
                return
            except socket.timeout:
                continue
        raise AssertionError("no ack for %s seq %d: %s" % (dev, s, (self.tmp / "bridge.log").read_text()[-1500:]))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            self.p.wait(15)
        self.log.close()
        self.sock.close()
        return self.p.returncode


def test_devices_appear_in_home_assistant_with_what_consent_allows(world):
    tmp, broker, hass = world
    b = BridgeProc(tmp, broker)
    try:
        b.send("toner-01", K1, HELLO)
        b.send("toner-01", K1, {1: 480, 2: 48, 3: 12, 4: 960, 5: 48, 6: 8})
        b.send("tank-02", K2, TANK)
        t_level = time.time()
        st = hass.wait(lambda s: s.get("sensor.toner_01_remaining", {}).get("state") == "480"
                       and "sensor.tank_02_consent" in s, 90, "toner-01's remaining = 480")
        rem = st["sensor.toner_01_remaining"]
        assert rem["attributes"]["unit_of_measurement"] == "pages"
        assert rem["attributes"]["state_class"] == "measurement"
        assert st["sensor.toner_01_fill"]["state"] == "48"
        assert st["sensor.toner_01_rate"]["state"] == "12"
        assert st["sensor.toner_01_rate"]["attributes"]["unit_of_measurement"] == "pages/d"
        empty = datetime.fromisoformat(st["sensor.toner_01_empty_at"]["state"])
        assert empty.tzinfo is not None and abs(empty.timestamp() - (t_level + 960 * 3600)) < 60
        assert st["sensor.toner_01_empty_at"]["attributes"]["device_class"] == "timestamp"
        assert float(st["sensor.toner_01_band"]["state"]) == 48
        assert st["sensor.toner_01_quality"]["state"] == "8"
        assert st["sensor.toner_01_consent"]["state"] == "full"
        assert "sensor.toner_01_battery" not in st                 # a mains board reports none
        # one HA device per board, identity from its hello, behind the bridge's device
        dev = "device_attr('sensor.toner_01_remaining', '%s')"
        assert hass.template("{{ %s }}" % (dev % "model")) == "TN-2420"
        assert hass.template("{{ %s }}" % (dev % "model_id")) == "TONER-1"
        assert hass.template("{{ %s }}" % (dev % "sw_version")) == "0.3.0"
        assert hass.template("{{ %s == device_id('binary_sensor.consumables_bridge_testbridge') }}"
                             % (dev % "via_device_id")) == "True"
        assert hass.template("{{ device_entities(device_id('sensor.toner_01_remaining')) | length }}") == "12"
        # consent order-only: identity, consent, orders; never a level entity
        tank = {k for k in st if k.split(".", 1)[1].startswith("tank_02_")}
        assert tank == {"sensor.tank_02_consent", "sensor.tank_02_order_status", "event.tank_02_order"}, tank
        assert st["sensor.tank_02_consent"]["state"] == "order-only"

        # a reminder: low soon turns on
        b.send("toner-01", K1, {0: M.EVENT, 1: M.EV_LOW_SOON, 2: 1, 4: 40})
        hass.wait(lambda s: s.get("binary_sensor.toner_01_low_soon", {}).get("state") == "on", 20, "low soon on")
        # an order request from the button reaches the event entity
        b.send("toner-01", K1, {0: M.EVENT, 1: M.EV_ORDER_REQUEST, 2: 1, 3: "toner-01-b1", 5: M.BY_BUTTON})
        st = hass.wait(lambda s: s.get("event.toner_01_order", {}).get("attributes", {}).get("event_type")
                       == "order_request", 20, "order event")
        assert st["event.toner_01_order"]["attributes"]["key"] == "toner-01-b1"

        # silence: unavailable after --ha-silence (3 s), available again with the next frame
        hass.wait(lambda s: s["sensor.toner_01_remaining"]["state"] == "unavailable", 20, "silent -> unavailable")
        b.send("toner-01", K1, {1: 470, 2: 47, 3: 12, 4: 940, 5: 48, 6: 8})
        hass.wait(lambda s: s["sensor.toner_01_remaining"]["state"] == "470", 20, "back with 470")

        # consent lowered to reminders: the level entities go, low soon stays
        b.send("toner-01", K1, {0: M.EVENT, 1: M.EV_CONSENT_CHANGED, 2: 1, 4: M.CONSENT_REMINDERS})
        # (two MQTT topics, a discovery removal and a state: HA may apply them in either order)
        st = hass.wait(lambda s: "sensor.toner_01_remaining" not in s
                       and s.get("sensor.toner_01_consent", {}).get("state") == "reminders",
                       20, "level entities removed, consent reminders")
        assert not any(k in st for k in ("sensor.toner_01_fill", "sensor.toner_01_empty_at"))
        assert "binary_sensor.toner_01_low_soon" in st

        # deleted from the registry: gone from Home Assistant
        doc = reg.load(b.registry)
        del doc["devices"]["tank-02"]
        reg.save(b.registry, doc)
        hass.wait(lambda s: "sensor.tank_02_consent" not in s, 20, "tank-02 removed")
    finally:
        rc = b.stop()
    assert rc == 0
    # the bridge stopped cleanly: its device and everything behind it is unavailable
    hass.wait(lambda s: s["binary_sensor.consumables_bridge_testbridge"]["state"] == "off"
              and s["sensor.toner_01_consent"]["state"] == "unavailable", 20, "bridge offline")
