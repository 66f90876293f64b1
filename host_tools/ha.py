"""Home Assistant MQTT discovery: every device the bridge has seen appears in Home
Assistant as one device with its entities, no YAML (as ESPHome and Tasmota devices do).

Discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery): one retained
config per entity at <prefix>/<component>/<node>/<object>/config (prefix default
`homeassistant`), stable unique ids `consumables_<device>_<what>`, the device block
from the device's hello (SKU, model, firmware, board) with `via_device` the bridge,
which is a device of its own. States are retained JSON on consumables/<bridge>/<device>/...
Availability: the bridge's status topic (its MQTT last will says "offline") AND a
per-device topic that turns "offline" after `silence_s` without a frame. When Home
Assistant publishes "online" on <prefix>/status (it restarted) everything is announced
again; a device deleted from the registry has its configs cleared (empty retained
payloads), which removes it from Home Assistant.

Consent decides what is published, never more than the device may send
(protocol/SPEC.md "Consent levels"): the consent sensor at any level; the order event
and last order status from order-only; low soon and the refill event from reminders;
consumed (usage) from automatic; the level entities (remaining, fill, rate, forecast
empty, its band, quality, battery) only at full. When consent is lowered the entities it
no longer allows are removed and their retained states cleared.

Payload builders (discovery_configs, level_state) are pure functions, tested against the
documented schema everywhere (tests/host/test_ha_schema.py) and against a real Home
Assistant core (tests/ha/test_home_assistant.py).
"""
from __future__ import annotations

import datetime
import json
import queue
import re
import socket
import threading
import time
import urllib.parse

from protocol import messages as M, schema

ROOT = "consumables"
ORIGIN = {"name": "smart-consumables", "sw_version": "0.1.0",
          "support_url": "https://github.com/smart-consumables/smart-consumables"}

# hello unit -> (unit of measurement, device_class): HA's sensor device classes allow
# weight in g and volume_storage in mL; pages and % have no device class.
# https://developers.home-assistant.io/docs/core/entity/sensor/#available-device-classes
UNITS = {0: ("g", "weight"), 1: ("mL", "volume_storage"), 2: ("pages", None), 3: ("%", None)}

# entity key -> minimum consent level (protocol/SPEC.md: what the device may send)
NEEDS = {"consent": M.CONSENT_NONE,
         "order": M.CONSENT_ORDER_ONLY, "order_status": M.CONSENT_ORDER_ONLY,
         "low_soon": M.CONSENT_REMINDERS, "refill": M.CONSENT_REMINDERS,
         "consumed": M.CONSENT_AUTOMATIC,
         "remaining": M.CONSENT_FULL, "fill": M.CONSENT_FULL, "rate": M.CONSENT_FULL,
         "empty_at": M.CONSENT_FULL, "band": M.CONSENT_FULL, "quality": M.CONSENT_FULL,
         "battery": M.CONSENT_FULL}
LEVEL_KEYS = ("remaining", "fill", "rate", "empty_at", "band", "quality", "battery")


def node_id(device: str) -> str:
    """A device id as a discovery topic level (HA allows [a-zA-Z0-9_-] there)."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", device)


def topics(bridge: str, device: str) -> dict:
    base = "%s/%s/%s" % (ROOT, node_id(bridge), node_id(device))
    return {"level": base + "/level", "consent": base + "/consent", "low_soon": base + "/low_soon",
            "order": base + "/order", "refill": base + "/refill", "order_status": base + "/order_status",
            "consumed": base + "/consumed", "availability": base + "/availability"}


def bridge_topic(bridge: str) -> str:
    return "%s/%s/status" % (ROOT, node_id(bridge))


def allowed(consent) -> list[str]:
    """The entity keys a device at this consent level may have."""
    lvl = consent if isinstance(consent, int) else -1
    return [k for k, need in NEEDS.items() if lvl >= need]


def device_block(bridge: str, device: str, hello: dict | None) -> dict:
    h = hello or {}
    d = {"identifiers": ["consumables_" + node_id(device)], "name": device,
         "manufacturer": "smart-consumables", "via_device": "consumables_bridge_" + node_id(bridge)}
    if h.get("model") or h.get("sku"):
        d["model"] = h.get("model") or h.get("sku")
    if h.get("sku"):
        d["model_id"] = h["sku"]
    if h.get("fw"):
        d["sw_version"] = h["fw"]
    if h.get("board"):
        d["hw_version"] = h["board"]
    return d


def bridge_config(prefix: str, bridge: str) -> tuple[str, dict]:
    """The bridge itself: a connectivity sensor, so devices can name it as via_device."""
    n = node_id(bridge)
    return ("%s/binary_sensor/consumables_bridge_%s/status/config" % (prefix, n), {
        "name": "Bridge", "unique_id": "consumables_bridge_%s_status" % n, "object_id": "consumables_bridge_" + n,
        "device_class": "connectivity", "entity_category": "diagnostic",
        "state_topic": bridge_topic(bridge), "payload_on": "online", "payload_off": "offline",
        "device": {"identifiers": ["consumables_bridge_" + n], "name": "Consumables bridge %s" % bridge,
                   "manufacturer": "smart-consumables", "model": "consumables bridge"},
        "origin": ORIGIN})


def discovery_configs(prefix: str, bridge: str, device: str, hello: dict | None, consent,
                      battery: bool = False) -> dict:
    """{config topic: config payload} for every entity this device's consent allows."""
    t = topics(bridge, device)
    h = hello or {}
    unit, dclass = UNITS.get(h.get("unit"), (None, None))
    n = node_id(device)
    common = {"device": device_block(bridge, device, hello), "origin": ORIGIN,
              "availability": [{"topic": bridge_topic(bridge)}, {"topic": t["availability"]}],
              "availability_mode": "all"}
    level = {"state_topic": t["level"]}
    spec = {
        "remaining": ("sensor", dict(level, name="Remaining", value_template="{{ value_json.remaining }}",
                                     state_class="measurement", unit_of_measurement=unit, device_class=dclass,
                                     icon=None if dclass else "mdi:gauge")),
        "fill": ("sensor", dict(level, name="Fill", value_template="{{ value_json.fill_pct }}",
                                unit_of_measurement="%", state_class="measurement", icon="mdi:car-coolant-level")),
        "rate": ("sensor", dict(level, name="Usage rate", value_template="{{ value_json.rate_per_day }}",
                                unit_of_measurement="%s/d" % unit if unit else None, state_class="measurement",
                                icon="mdi:chart-line")),
        "empty_at": ("sensor", dict(level, name="Forecast empty", device_class="timestamp",
                                    value_template="{{ value_json.empty_at }}")),
        "band": ("sensor", dict(level, name="Forecast uncertainty", device_class="duration",
                                unit_of_measurement="h", value_template="{{ value_json.band_h }}",
                                entity_category="diagnostic")),
        "quality": ("sensor", dict(level, name="Forecast quality", value_template="{{ value_json.quality }}",
                                   state_class="measurement", entity_category="diagnostic", icon="mdi:check-decagram")),
        "battery": ("sensor", dict(level, name="Battery", device_class="battery", unit_of_measurement="%",
                                   state_class="measurement", value_template="{{ value_json.battery_pct }}",
                                   entity_category="diagnostic")),
        "consent": ("sensor", {"name": "Consent", "state_topic": t["consent"], "device_class": "enum",
                               "options": list(schema.CONSENT_NAMES), "entity_category": "diagnostic",
                               "icon": "mdi:shield-account"}),
        "low_soon": ("binary_sensor", {"name": "Low soon", "state_topic": t["low_soon"], "device_class": "problem",
                                       "payload_on": "ON", "payload_off": "OFF"}),
        "order": ("event", {"name": "Order", "state_topic": t["order"], "event_types": ["order_request"],
                            "icon": "mdi:cart"}),
        "refill": ("event", {"name": "Refill", "state_topic": t["refill"], "event_types": ["refill_detected"],
                             "icon": "mdi:refresh"}),
        "order_status": ("sensor", {"name": "Last order status", "state_topic": t["order_status"],
                                    "device_class": "enum", "options": list(schema.STATUS_NAMES.values()),
                                    "icon": "mdi:truck-delivery"}),
        "consumed": ("sensor", {"name": "Consumed", "state_topic": t["consumed"], "unit_of_measurement": unit,
                                "device_class": dclass, "state_class": "total_increasing"}),
    }
    out = {}
    for key in allowed(consent):
        if key == "battery" and not battery:
            continue
        comp, cfg = spec[key]
        cfg = {k: v for k, v in dict(common, **cfg).items() if v is not None}
        cfg["unique_id"] = "consumables_%s_%s" % (n, key)
        cfg["object_id"] = "%s_%s" % (n, key)
        out["%s/%s/%s/%s/config" % (prefix, comp, n, key)] = cfg
    return out


def iso(ts: float) -> str:
    """A timezone-aware ISO 8601 time (HA's timestamp sensors require the offset)."""
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds")


def level_state(level: dict) -> dict:
    """A stored level report (Message.to_json + received_at) -> the level state topic's JSON."""
    out = {"remaining": level.get("remaining"), "fill_pct": level.get("fill_pct"),
           "rate_per_day": level.get("rate_per_day"), "quality": level.get("quality"),
           "battery_pct": level.get("battery_pct"), "band_h": level.get("tte_err_h"), "empty_at": None}
    if level.get("tte_h") is not None and level.get("received_at"):
        out["empty_at"] = iso(level["received_at"] + 3600.0 * level["tte_h"])
    return out


def parse_mqtt_url(url: str):
    p = urllib.parse.urlsplit(url)
    if p.scheme != "mqtt" or not p.hostname:
        raise ValueError("Home Assistant broker must be mqtt://[USER:PASS@]HOST[:PORT], not %r" % url)
    return p.hostname, p.port or 1883, p.username, p.password


class Device:
    """What is known of one device, enough to (re)announce it and its states."""

    def __init__(self, name):
        self.name = name
        self.hello = None
        self.consent = None
        self.level = None
        self.low_soon = None
        self.consumed = None
        self.order_status = None
        self.last_seen = 0.0
        self.online = None
        self.configs = {}   # config topic -> payload as published


class HomeAssistant:
    """Publishes discovery, states and availability to the broker Home Assistant uses.

    on_message(msg) is the bridge's hook (called after a frame is stored and acked,
    under the bridge's lock): it only queues; one worker thread talks MQTT.
    """

    def __init__(self, url: str, store, registry, prefix: str = "homeassistant", bridge_id: str | None = None,
                 silence_s: float = 7200.0, log=None, tick_s: float = 1.0):
        import paho.mqtt.client as mqtt  # imported here: the bridge runs without paho unless --ha
        self._mqtt = mqtt
        self.host, self.port, self.user, self.password = parse_mqtt_url(url)
        self.prefix = prefix.strip("/") or "homeassistant"
        self.bridge = bridge_id or socket.gethostname()
        self.store, self.registry = store, registry
        self.silence_s, self.tick_s = float(silence_s), tick_s
        self.log = log or (lambda event, **kw: None)
        self.devices: dict[str, Device] = {}
        self.q: queue.Queue = queue.Queue(maxsize=100000)
        self._stop = threading.Event()
        self._thread = None
        self.client = None
        self.connected = threading.Event()
        self.announcements = 0
        self._next_poll = 0.0

    # ------------------------------------------------------------ lifecycle
    def start(self):
        mqtt = self._mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="consumables-ha-%s" % node_id(self.bridge))
        if self.user:
            c.username_pw_set(self.user, self.password)
        c.will_set(bridge_topic(self.bridge), "offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_message = self._on_mqtt_message
        c.reconnect_delay_set(1, 30)
        c.connect_async(self.host, self.port, keepalive=30)
        c.loop_start()
        self.client = c
        for d in self.store.devices():
            dev = self._dev(d["device"])
            dev.hello, dev.consent, dev.level = d["hello"], d["consent"], d["level"]
            dev.last_seen = d["last_seen"] or 0.0
        self._thread = threading.Thread(target=self._run, name="bridge-ha", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self.client:
            info = self.client.publish(bridge_topic(self.bridge), "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass
            self.client.disconnect()
            self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            self.log("ha_connect_failed", error=str(reason_code))
            return
        client.subscribe(self.prefix + "/status", qos=1)
        self.log("ha_connected", broker="%s:%d" % (self.host, self.port), prefix=self.prefix)
        self.q.put(("announce", None))

    def _on_mqtt_message(self, client, userdata, msg):
        if msg.topic == self.prefix + "/status" and msg.payload.strip() == b"online":
            self.q.put(("announce", None))   # Home Assistant (re)started: tell it everything again

    # ------------------------------------------------------------ bridge hook
    def on_message(self, msg):
        try:
            self.q.put_nowait(("msg", (msg, time.time())))
        except queue.Full:
            self.log("ha_queue_full", device=msg.device)

    # ------------------------------------------------------------ worker
    def _dev(self, name) -> Device:
        d = self.devices.get(name)
        if d is None:
            d = self.devices[name] = Device(name)
        return d

    def _pub(self, topic, payload, retain=True):
        if not isinstance(payload, (str, bytes)):
            payload = json.dumps(payload, sort_keys=True)
        self.client.publish(topic, payload, qos=1, retain=retain)

    def _run(self):
        next_tick = 0.0
        while not self._stop.is_set():
            try:
                kind, arg = self.q.get(timeout=0.2)
            except queue.Empty:
                kind = None
            try:
                if kind == "announce":
                    self._announce_all()
                elif kind == "msg":
                    self._apply(*arg)
                if time.monotonic() >= next_tick:
                    self._tick()
                    next_tick = time.monotonic() + self.tick_s
            except Exception as e:  # never let one bad record stop the publisher
                self.log("ha_error", error="%s: %s" % (type(e).__name__, e))

    def _announce_all(self):
        if not self.client.is_connected():
            return
        self.connected.set()
        self._pub(bridge_topic(self.bridge), "online")
        topic, cfg = bridge_config(self.prefix, self.bridge)
        self._pub(topic, cfg)
        for d in list(self.devices.values()):
            if self.registry.key_for(d.name) is None:
                continue
            d.configs = {}
            self._sync(d, force=True)
        self.announcements += 1
        self.log("ha_announced", devices=len(self.devices))

    def _apply(self, msg, now):
        d = self._dev(msg.device)
        d.last_seen = now
        doc = msg.to_json()
        doc["received_at"] = now
        t = topics(self.bridge, d.name)
        if msg.type == "hello":
            d.hello, d.consent = doc, doc.get("consent")
        elif msg.type == "level":
            d.level = doc
        elif msg.type == "usage":
            d.consumed = msg.consumed_milli / 1000.0
        elif msg.type == "event":
            if msg.kind == M.EV_CONSENT_CHANGED and msg.value is not None:
                d.consent = msg.value
            elif msg.kind == M.EV_LOW_SOON:
                d.low_soon = "ON"
            elif msg.kind == M.EV_REFILL:
                d.low_soon = "OFF"
        if not self.connected.is_set():
            return  # announced (with these states) once connected
        self._sync(d)
        if msg.type == "event" and msg.kind == M.EV_ORDER_REQUEST and "order" in allowed(d.consent):
            self._pub(t["order"], {"event_type": "order_request", "key": msg.key,
                                   "trigger": "automatic" if msg.trigger == M.BY_AUTOMATIC else "button"},
                      retain=False)
        elif msg.type == "event" and msg.kind == M.EV_REFILL and "refill" in allowed(d.consent):
            self._pub(t["refill"], {"event_type": "refill_detected", "quantity": msg.value}, retain=False)

    def _sync(self, d: Device, force=False):
        """Publish d's configs (new ones, and empty payloads for those consent no longer
        allows), its availability and its retained states."""
        t = topics(self.bridge, d.name)
        battery = bool(d.level and d.level.get("battery_pct") is not None)
        want = discovery_configs(self.prefix, self.bridge, d.name, d.hello, d.consent, battery)
        for topic in set(d.configs) - set(want):
            self._pub(topic, "")          # removes the entity from Home Assistant
        keys = allowed(d.consent)
        if "remaining" not in keys:
            self._pub(t["level"], "")     # a retained level must not outlive the consent
        if "consumed" not in keys:
            self._pub(t["consumed"], "")
        new = {k: v for k, v in want.items() if force or d.configs.get(k) != v}
        for topic, cfg in new.items():
            self._pub(topic, cfg)
        d.configs = want
        online = time.time() - d.last_seen <= self.silence_s
        if force or online != d.online:
            self._pub(t["availability"], "online" if online else "offline")
            d.online = online
        if d.consent is not None:
            self._pub(t["consent"], schema.CONSENT_NAMES[d.consent] if 0 <= d.consent < 5 else "none")
        if "remaining" in keys and d.level:
            self._pub(t["level"], level_state(d.level))
        if "low_soon" in keys and d.low_soon:
            self._pub(t["low_soon"], d.low_soon)
        if "consumed" in keys and d.consumed is not None:
            self._pub(t["consumed"], "%g" % d.consumed)
        if "order_status" in keys and d.order_status:
            self._pub(t["order_status"], d.order_status)

    def remove(self, d: Device):
        t = topics(self.bridge, d.name)
        for topic in d.configs:
            self._pub(topic, "")
        for topic in t.values():
            self._pub(topic, "")
        self.devices.pop(d.name, None)
        self.log("ha_removed", device=d.name)

    def _tick(self):
        """Silence timeouts, devices deleted from the registry, order status changes."""
        if not self.connected.is_set():
            if self.client.is_connected():
                self._announce_all()
            return
        now = time.time()
        known = set(self.registry.devices())   # one look at the registry file per tick
        poll = now >= self._next_poll
        if poll:
            self._next_poll = now + 5.0         # order status: from the store every 5 s
        for d in list(self.devices.values()):
            if d.name not in known:
                if d.configs:
                    self.remove(d)
                continue
            if d.online and now - d.last_seen > self.silence_s:
                self._pub(topics(self.bridge, d.name)["availability"], "offline")
                d.online = False
            if poll and "order_status" in allowed(d.consent):
                sent = [x for x in self.store.sent_downlinks(d.name) if x["type"] == "order_status"]
                if sent:
                    st = schema.STATUS_NAMES.get(sent[-1]["fields"].get("status"))
                    if st and st != d.order_status:
                        d.order_status = st
                        self._pub(topics(self.bridge, d.name)["order_status"], st)
