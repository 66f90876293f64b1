"""consumables send: commands queued in the store, delivered as authenticated downlinks."""
import socket
import time

import pytest

from host_tools import registry as reg
from host_tools.bridge import Bridge
from host_tools.links import UdpLink
from host_tools.send import UsageError, main_send, parse_command
from host_tools.store import Store
from host_tools.uplinks import JsonlUplink
from protocol import messages
from test_bridge_support import DEV, decode_down, frame, make_registry, wait_for


def test_parse_command():
    assert parse_command("config", ["report_s=60", "low_pct=0x10"]) == ("config", {"report_s": 60, "low_pct": 16})
    assert parse_command("consent", ["reminders"]) == ("consent", {"level": 2})
    assert parse_command("consent", ["4"]) == ("consent", {"level": 4})
    assert parse_command("order-status", ["dev1:3", "shipped"]) == ("order_status", {"key": "dev1:3", "status": 2})
    assert parse_command("time", ["1700000000"]) == ("time", {"unix": 1700000000})
    assert parse_command("time", []) == ("time", {})
    for cmd, args in [("config", []), ("config", ["bogus=1"]), ("config", ["report_s=x"]), ("consent", ["9"]),
                      ("order-status", ["k", "lost"]), ("reboot", []), ("config", ["report_s=0"])]:
        with pytest.raises(UsageError):
            parse_command(cmd, args)


def test_send_errors_exit_2(tmp_path, capsys):
    regpath = make_registry(tmp_path)
    db = tmp_path / "b.sqlite"
    assert main_send([DEV, "consent", "full", "--db", str(db), "--registry", str(regpath)]) == 2
    assert "no bridge database" in capsys.readouterr().err
    Store(db).close()
    assert main_send(["ghost", "consent", "full", "--db", str(db), "--registry", str(regpath)]) == 2
    assert "not in the registry" in capsys.readouterr().err
    assert main_send([DEV, "config", "nope=1", "--db", str(db), "--registry", str(regpath)]) == 2
    err = capsys.readouterr().err
    assert "no field" in err and len(err.strip().splitlines()) == 1
    assert main_send([]) == 2


@pytest.fixture
def udp_bridge(tmp_path):
    """A running bridge on a UDP port of its own: (bridge, db path, registry path)."""
    regpath = make_registry(tmp_path)
    db = tmp_path / "b.sqlite"
    b = Bridge(db, reg.Registry(regpath), [JsonlUplink(str(tmp_path / "o.jsonl"))],
               [UdpLink("udp://127.0.0.1:0")], log=lambda *a, **k: None).start()
    try:
        yield b, db, regpath
    finally:
        b.stop()


def test_send_delivered_on_device_link(udp_bridge, capsys):
    b, db, regpath = udp_bridge
    common = ["--db", str(db), "--registry", str(regpath)]
    # queued before the device was ever seen: waits for it
    assert main_send([DEV, "config", "report_s=60", "sample_s=10"] + common) == 0
    assert "queued config" in capsys.readouterr().out
    # the device's consent is unknown yet: any level but 0 may be a raise
    assert main_send([DEV, "consent", "order-only", "--customer-confirmed"] + common) == 0
    assert main_send([DEV, "order-status", "dev1:7", "placed"] + common) == 0
    assert main_send([DEV, "time"] + common) == 0
    time.sleep(0.3)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)   # generous: a loaded CI machine must not fail it; a lost reply still does
    s.sendto(frame(1), b.links[0].address)
    got = [decode_down(s.recvfrom(512)[0]) for _ in range(5)]  # the ack, then the commands
    assert all(k == DEV for k, _, _ in got)
    dseqs = [d for _, d, _ in got]
    assert dseqs == sorted(set(dseqs))
    pl = [p for _, _, p in got]
    assert pl[0] == {0: messages.ACK, 1: 1}
    assert pl[1] == {0: messages.CONFIG, 1: 10, 2: 60}
    assert pl[2] == {0: messages.CONSENT, 1: 1}
    assert pl[3] == {0: messages.ORDER_STATUS, 1: "dev1:7", 2: 1}
    assert pl[4][0] == messages.TIME and abs(pl[4][1] - time.time()) < 5
    # the device is now known and fresh: a new command goes out without waiting for an uplink
    assert main_send([DEV, "consent", "3", "--customer-confirmed"] + common) == 0
    _, d, p = decode_down(s.recvfrom(512)[0])
    assert p == {0: messages.CONSENT, 1: 3} and d > dseqs[-1]
    # (marked sent just after it went out: the reply can arrive first)
    assert wait_for(lambda: b.store.pending_downlinks() == []), b.store.pending_downlinks()
    assert b.count["downlinks"] == 5


def test_weather_command_parses_to_the_wire_units():
    # the device test's vector (tests/device/mpt_downlink.py): -2, -5, -8 C; normals -10, -12
    assert parse_command("weather", ["2024-10-04", "-2,-5,-8", "-10,-12"]) == (
        "weather", {"day": 20000, "daily": [116, 110, 104], "normals": [100, 96]})
    assert parse_command("weather", ["2024-10-04", "0.24,67.5"]) == ("weather", {"day": 20000, "daily": [120, 255]})
    for args, says in [(["2024-10-04"], "DATE TEMPS"), (["04.10.2024", "1"], "YYYY-MM-DD"),
                       (["2024-10-04", "1,warm"], "degrees C"), (["2024-10-04", "-61"], "outside"),
                       (["2024-10-04", ",".join(["1"] * 17)], "at most 16"),
                       (["2024-10-04", "1", ",".join(["1"] * 9)], "at most 8")]:
        with pytest.raises(UsageError, match=says):
            parse_command("weather", args)


def test_weather_with_negative_temperatures_is_delivered(udp_bridge, capsys):
    b, db, _ = udp_bridge
    # "-2,-5,-8" on a command line is an argument, not an option
    assert main_send([DEV, "weather", "2024-10-04", "-2,-5,-8", "-10,-12", "--db", str(db)]) == 0, \
        capsys.readouterr().err
    time.sleep(0.3)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    s.sendto(frame(1), b.links[0].address)
    got = [decode_down(s.recvfrom(512)[0])[2] for _ in range(2)]
    assert got[1] == {0: messages.WEATHER, 1: 20000, 2: [116, 110, 104], 3: [100, 96]}
