"""Home Assistant MQTT discovery payloads (host_tools/ha.py), checked against the rules
of HA's documented discovery schema, without Home Assistant (tests/ha runs the real one):
topic form, unique and stable ids, device block, availability, device classes with the
units HA accepts for them, timezone-aware timestamps, and consent: nothing the device's
consent does not allow (no level entity below "full")."""
import datetime
import json
import re

import pytest

from host_tools import ha

HELLO = {"sku": "TONER-1", "model": "TN-2420", "fw": "0.3.0", "board": "esp32-devkitc", "unit": 2,
         "capacity": 1000, "consent": 4}
TOPIC = re.compile(r"^homeassistant/(sensor|binary_sensor|event)/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config$")
# https://www.home-assistant.io/integrations/sensor/#device-class : units per device class
UNITS_OK = {"weight": {"g", "kg", "mg", "µg", "oz", "lb", "st"}, "volume_storage": {"mL", "L", "gal", "fl. oz.",
            "ft³", "m³", "CCF"}, "battery": {"%"}, "duration": {"d", "h", "min", "s", "ms"},
            "timestamp": {None}, "enum": {None}}


def configs(consent, hello=HELLO, battery=True, device="toner-01"):
    return ha.discovery_configs("homeassistant", "office", device, dict(hello, consent=consent), consent, battery)



def test_every_config_is_well_formed():
    cfgs = configs(4)
    assert len(cfgs) == 13
    ids = [c["unique_id"] for c in cfgs.values()]
    assert len(set(ids)) == len(ids) and all(i.startswith("consumables_toner-01_") for i in ids)
    for topic, c in cfgs.items():
        assert TOPIC.match(topic), topic
        json.dumps(c)                                   # plain JSON
        assert c["name"] and c["state_topic"].startswith("consumables/office/toner-01/")
        dev = c["device"]
        assert dev["identifiers"] == ["consumables_toner-01"] and dev["via_device"] == "consumables_bridge_office"
        assert dev["model"] == "TN-2420" and dev["model_id"] == "TONER-1" and dev["sw_version"] == "0.3.0"
        assert c["availability_mode"] == "all"
        assert [a["topic"] for a in c["availability"]] == ["consumables/office/status",
                                                          "consumables/office/toner-01/availability"]
        dc = c.get("device_class")
        if dc in UNITS_OK:
            assert c.get("unit_of_measurement") in UNITS_OK[dc], (dc, c.get("unit_of_measurement"))
        if c.get("state_class"):
            assert c["state_class"] in ("measurement", "total", "total_increasing")
        if dc == "enum":
            assert c["options"] and "state_class" not in c and "unit_of_measurement" not in c
        if topic.split("/")[1] == "event":
            assert c["event_types"]


def test_unit_decides_device_class():
    def remaining(unit):
        c = configs(4, dict(HELLO, unit=unit))
        return next(v for k, v in c.items() if k.endswith("/remaining/config"))
    assert (remaining(0)["device_class"], remaining(0)["unit_of_measurement"]) == ("weight", "g")
    assert (remaining(1)["device_class"], remaining(1)["unit_of_measurement"]) == ("volume_storage", "mL")
    assert "device_class" not in remaining(2) and remaining(2)["unit_of_measurement"] == "pages"
    assert "device_class" not in remaining(3)


@pytest.mark.parametrize("consent,want", [
    (0, {"consent"}),
    (1, {"consent", "order", "order_status"}),
    (2, {"consent", "order", "order_status", "low_soon", "refill"}),
    (3, {"consent", "order", "order_status", "low_soon", "refill", "consumed"}),
    (4, set(ha.NEEDS)),
    (None, set()),
])
def test_consent_decides_entities(consent, want):
    got = {t.split("/")[3] for t in configs(consent)}
    assert got == want
    if consent is not None and consent < 4:
        assert not got & set(ha.LEVEL_KEYS)          # no level entity below "full"


def test_battery_only_for_battery_boards():
    assert not any("/battery/" in t for t in configs(4, battery=False))


def test_ids_are_stable_and_topic_safe():
    a, b = configs(4, device="tank.1/a"), configs(4, device="tank.1/a")
    assert a == b
    assert all(TOPIC.match(t) for t in a)
    assert next(iter(a.values()))["device"]["name"] == "tank.1/a"


def test_level_state_forecast_is_timezone_aware():
    st = ha.level_state({"remaining": 480, "fill_pct": 48, "rate_per_day": 12, "tte_h": 48, "tte_err_h": 6,
                         "quality": 8, "received_at": 1_700_000_000.0})
    t = datetime.datetime.fromisoformat(st["empty_at"])
    assert t.tzinfo is not None and t.timestamp() == 1_700_000_000 + 48 * 3600
    assert st["band_h"] == 6 and st["remaining"] == 480
    assert ha.level_state({"remaining": 1, "received_at": 1.0})["empty_at"] is None


def test_bridge_device_config():
    topic, c = ha.bridge_config("homeassistant", "office")
    assert topic == "homeassistant/binary_sensor/consumables_bridge_office/status/config"
    assert c["device"]["identifiers"] == ["consumables_bridge_office"]
    assert c["state_topic"] == "consumables/office/status"


def test_bad_broker_url_is_one_line():
    with pytest.raises(ValueError, match="mqtt://"):
        ha.parse_mqtt_url("http://x")
