"""The bridge as a service: its TOML config file (command line wins), the systemd unit
(`consumables service`), a clean SIGTERM (nothing acked lost, database closed), and
`consumables doctor`."""
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools import bridgeconf
from host_tools.bridge import bridge_parser, main_bridge
from host_tools.doctor import main_doctor
from host_tools.service import main_service
from netutil import free_port
from test_bridge_support import HELLO, frame, level, make_registry, wait_for

ROOT = Path(__file__).resolve().parents[2]


def write_conf(tmp_path, text):
    p = tmp_path / "bridge.toml"
    p.write_text(text)
    return p


def conf_text(tmp_path, udp, extra=""):
    return ('listen = ["udp://127.0.0.1:%d"]\nuplink = ["jsonl:%s"]\nregistry = "%s"\ndb = "%s"\n'
            'print_every = 0\ngroup_commit = 64\n%s' % (udp, tmp_path / "up.jsonl", make_registry(tmp_path),
                                                        tmp_path / "b.sqlite", extra))


# ------------------------------------------------------------------ config file
def test_config_file_then_command_line_overrides(tmp_path):
    p = write_conf(tmp_path, conf_text(tmp_path, 5683, '[home_assistant]\nbroker = "mqtt://h:1883"\n'
                                                       'silence_s = 60\n[metrics]\nlisten = "127.0.0.1:9464"\n'))
    a = bridgeconf.parse_with_config(bridge_parser(), ["--config", str(p)])
    assert a.listen == ["udp://127.0.0.1:5683"] and a.group_commit == 64 and a.print_every == 0
    assert a.ha == "mqtt://h:1883" and a.ha_silence == 60 and a.metrics == "127.0.0.1:9464"
    assert a.ha_prefix == "homeassistant"                      # not in the file: the default
    assert a.quiet is False
    a = bridgeconf.parse_with_config(bridge_parser(), ["--config", str(p), "--listen", "udp://127.0.0.1:9",
                                                       "--group-commit", "8", "--ha-silence", "5"])
    assert a.listen == ["udp://127.0.0.1:9"] and a.group_commit == 8 and a.ha_silence == 5
    assert a.uplink == ["jsonl:%s" % (tmp_path / "up.jsonl")]  # still the file's


@pytest.mark.parametrize("text,msg", [
    ("listen = 5\n", "listen must be a list"),
    ("lisen = []\n", "unknown key 'lisen'"),
    ("[home_assistant]\nbrokr = 'x'\n", "unknown key home_assistant.brokr"),
    ("group_commit = 'many'\n", "group_commit must be a int"),
    ("baud = true\n", "baud must be a int"),
    ("quiet = 1\n", "quiet must be a bool"),
    ("listen = [1]\n", "listen must be a list of strings"),
    ("[metrics\n", "config"),
])
def test_bad_config_is_one_line(tmp_path, capsys, text, msg):
    p = write_conf(tmp_path, text)
    assert main_bridge(["--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and "Traceback" not in err


def test_quiet_leaves_out_per_message_lines(tmp_path):
    """--quiet (or quiet = true): no line per frame, the counters and errors still."""
    udp = free_port(socket.SOCK_DGRAM)
    p = write_conf(tmp_path, conf_text(tmp_path, udp, "quiet = true\n").replace("print_every = 0", "print_every = 0.3"))
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "bridge", "--config", str(p)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert wait_for(lambda: (tmp_path / "b.sqlite.status.json").exists(), 15)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(frame(1, HELLO), ("127.0.0.1", udp))
    s.recvfrom(512)
    s.sendto(frame(1, HELLO)[:-3] + b"\x00", ("127.0.0.1", udp))   # damaged: still logged
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    events = [json.loads(x)["event"] for x in proc.stderr.read().decode().splitlines() if x.startswith("{")]
    assert "frame" not in events and "forwarded" not in events
    assert "counters" in events and "bridge_stopped" in events
    assert "bad_crc" in events or "noise" in events


def test_missing_config_is_one_line(tmp_path, capsys):
    assert main_bridge(["--config", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


# ------------------------------------------------------------------ SIGTERM
def test_sigterm_stops_cleanly_nothing_acked_lost(tmp_path):
    """The bridge from its config file alone; SIGTERM while frames are arriving: exit 0,
    every acked frame stored, the database closed (its WAL checkpointed and removed)."""
    udp = free_port(socket.SOCK_DGRAM)
    p = write_conf(tmp_path, conf_text(tmp_path, udp))
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "bridge", "--config", str(p)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert wait_for(lambda: (tmp_path / "b.sqlite.status.json").exists(), 15)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    acked = []
    for seq in range(1, 400):
        s.sendto(frame(seq, HELLO if seq == 1 else level(1000 - seq)), ("127.0.0.1", udp))
        try:
            s.recvfrom(512)
            acked.append(seq)
        except (socket.timeout, ConnectionRefusedError):
            break
        if seq == 150:   # after its ack (sent before it, the ack of 150 raced the signal)
            proc.send_signal(signal.SIGTERM)
    rc = proc.wait(20)
    err = proc.stderr.read().decode()
    assert rc == 0, err[-1000:]
    assert len(acked) >= 150
    events = [json.loads(x)["event"] for x in err.splitlines() if x.startswith("{")]
    assert events[-1] == "bridge_stopped"
    assert not (tmp_path / "b.sqlite-wal").exists()            # closed, not abandoned
    db = sqlite3.connect(str(tmp_path / "b.sqlite"))
    stored = {r[0] for r in db.execute("SELECT seq FROM messages")}
    db.close()
    assert set(acked) <= stored


# ------------------------------------------------------------------ systemd unit
def test_service_unit(tmp_path, capsys):
    p = write_conf(tmp_path, conf_text(tmp_path, 5683))
    assert main_service(["print", "--system", "--config", str(p), "--run-as", "consumables"]) == 0
    unit = capsys.readouterr().out
    assert "ExecStart=" in unit and " bridge --config %s" % p in unit
    exe = unit.split("ExecStart=")[1].split(" bridge")[0].split()[0]
    assert os.path.isabs(exe) and os.path.exists(exe)
    for line in ("Restart=on-failure", "KillSignal=SIGTERM", "User=consumables", "SupplementaryGroups=dialout",
                 "WantedBy=multi-user.target"):
        assert line in unit.splitlines()
    assert main_service(["install", "--user", "--config", str(p), "--unit-dir", str(tmp_path / "u")]) == 0
    out = capsys.readouterr().out
    written = (tmp_path / "u" / "consumables-bridge.service").read_text()
    assert "WantedBy=default.target" in written and "User=" not in written
    assert "systemctl --user daemon-reload" in out
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "u" / "consumables-bridge.service")],
                           capture_output=True, text=True)
        assert "consumables-bridge.service:" not in r.stderr, r.stderr   # no complaint about our unit
    assert main_service(["uninstall", "--user", "--unit-dir", str(tmp_path / "u")]) == 0
    assert not (tmp_path / "u" / "consumables-bridge.service").exists()


def test_service_refuses_a_config_that_cannot_start(tmp_path, capsys):
    p = write_conf(tmp_path, 'db = "x.sqlite"\n')
    assert main_service(["install", "--user", "--config", str(p), "--unit-dir", str(tmp_path)]) == 2
    assert "needs uplink" in capsys.readouterr().err
    assert main_service(["install", "--user", "--unit-dir", str(tmp_path)]) == 2
    assert not list(tmp_path.glob("*.service"))


# ------------------------------------------------------------------ doctor
def test_doctor_passes_a_good_setup(tmp_path, capsys):
    p = write_conf(tmp_path, conf_text(tmp_path, free_port(socket.SOCK_DGRAM)))
    assert main_doctor(["--config", str(p)]) == 0
    out = capsys.readouterr().out
    assert "ok    registry" in out and "ok    database" in out and "ok    listen" in out
    assert out.strip().endswith("all checks passed")


def test_doctor_says_what_to_fix(tmp_path, capsys):
    reg = make_registry(tmp_path)
    os.chmod(reg, 0o644)
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    dead = free_port()
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    rc = main_doctor(["--registry", str(reg), "--db", str(tmp_path / "junk.sqlite"),
                      "--serial", str(tmp_path / "ttyUSB9"),
                      "--listen", "udp://127.0.0.1:%d" % busy.getsockname()[1],
                      "--uplink", "mqtt://127.0.0.1:%d/c" % dead, "--ha", "mqtt://127.0.0.1:%d" % dead])
    out = capsys.readouterr().out
    busy.close()
    assert rc == 1
    lines = {ln.split()[1]: ln for ln in out.splitlines() if ln.startswith("FAIL")}
    assert "chmod 600 %s" % reg in lines["registry"]
    assert "not an SQLite database" in lines["database"] or "not a bridge database" in lines["database"]
    assert "does not exist" in lines["serial"] and "plug the board in" in lines["serial"]
    assert "cannot bind" in lines["listen"]
    assert "is mosquitto running?" in lines["broker"]
    assert out.strip().endswith("check(s) failed")


def test_doctor_sees_a_serial_port_in_use(tmp_path, capsys):
    import pty
    import serial
    master, slave = pty.openpty()
    port = os.ttyname(slave)
    held = serial.Serial(port, exclusive=True)
    try:
        rc = main_doctor(["--registry", str(make_registry(tmp_path)), "--db", str(tmp_path / "b.sqlite"),
                          "--serial", port, "--uplink", "jsonl:%s" % (tmp_path / "u.jsonl")])
        out = capsys.readouterr().out
    finally:
        held.close()
        os.close(master)
        os.close(slave)
    assert rc == 1 and "in use by another program" in out
    assert main_doctor(["--registry", str(make_registry(tmp_path)), "--db", str(tmp_path / "b.sqlite"),
                        "--uplink", "jsonl:%s" % (tmp_path / "u.jsonl")]) == 0
