"""consumables deploy against the virtual board, through mpremote's serial transport."""
import errno
import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from host_tools import registry as registry_mod
import serial

from host_tools import deploy as dp
from host_tools.board import VirtualBoard

ROOT = Path(__file__).resolve().parents[2]
KEY = "0123456789abcdef" * 4


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred():
        time.sleep(0.05)
    return pred()


def make_tree(root):
    """A small stand-in for firmware/ + protocol/, so these tests do not wait on others' code."""
    files = {
        "firmware/__init__.py": "",
        "firmware/main.py": "from protocol import p\nfrom firmware.sensors import sim as s\n"
                            "def run():\n    open('/ran.txt', 'w').write(p.NAME + s.NAME)\n",
        "firmware/sensors/__init__.py": "",
        "firmware/sensors/sim.py": "NAME = 'sensor'\n",   # the virtual board's sensor type
        "protocol/__init__.py": "",
        "protocol/p.py": "NAME = 'proto-'\n",
    }
    # a valid board (deploy validates it with firmware/boardcheck.py), renamed
    board = json.loads((ROOT / "boards/virtual.json").read_text())
    board["name"] = "testboard"
    files["boards/testboard.json"] = json.dumps(board)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def board(tmp_path):
    with VirtualBoard(tmp_path / "pty", tmp_path / "flash") as b:
        yield b


@pytest.fixture
def src(tmp_path):
    return make_tree(tmp_path / "src")


def run(capsys, *args):
    code = dp.main_deploy(list(map(str, args)))
    out, err = capsys.readouterr()
    return code, out, err


def key_file(tmp_path, key=KEY):
    """The key as deploy takes it: from a file (argv is visible in ps)."""
    p = tmp_path / ("key-%d.hex" % abs(hash(key)))
    p.write_text(key + "\n")
    return p


def args(board, src, tmp_path, **kw):
    a = {"--port": board.pty_path, "--board": "testboard", "--device-id": "dev-1", "--key-file": key_file(tmp_path),
         "--registry": tmp_path / "reg.json", "--src": src}
    a.update(kw)
    return [x for kv in a.items() for x in kv]


def test_full_then_incremental_deploy(board, src, tmp_path, capsys):
    flash = tmp_path / "flash"
    code, out, err = run(capsys, *args(board, src, tmp_path))
    assert code == 0, err
    assert "copied 9 of 9 files" in out and KEY not in out + err
    assert (flash / "firmware/sensors/sim.mpy").exists() and not (flash / "firmware/main.py").exists()
    assert (flash / "main.py").read_text() == "from firmware import main\nmain.run()\n"
    assert json.loads((flash / "board.json").read_text())["name"] == "testboard"
    assert json.loads((flash / "provision.json").read_text()) == {"device_id": "dev-1", "key": KEY, "consent": 1, "transport": {"type": "serial"},
                                                                 "board": "testboard"}
    # After the reset main.py imports the compiled packages and runs.
    ran = flash / "ran.txt"
    assert wait_for(lambda: ran.exists() and ran.read_text() == "proto-sensor")

    reg = tmp_path / "reg.json"
    assert stat.S_IMODE(reg.stat().st_mode) == 0o600
    assert json.loads(reg.read_text()) == {"devices": {"dev-1": {
        "key": KEY, "board": "testboard", "port": str(board.pty_path),
        "key_fp": registry_mod.fingerprint(bytes.fromhex(KEY))}}}

    code, out, _ = run(capsys, *args(board, src, tmp_path))
    assert code == 0 and "copied 0 of 9 files" in out

    # One source edited, one file deleted on the device, one module removed from the tree.
    (src / "protocol/p.py").write_text("NAME = 'proto2-'\n")
    (flash / "firmware/sensors/__init__.mpy").unlink()
    (src / "firmware/sensors/sim.py").unlink()
    (src / "firmware/t.py").write_text("NAME = 't'\n")
    code, out, err = run(capsys, *args(board, src, tmp_path))
    assert code == 0, err
    assert "copied 3 of 9 files" in out and "removed 1" in out
    assert not (flash / "firmware/sensors/sim.mpy").exists()


def test_real_repository_tree(board, tmp_path, capsys):
    src = tmp_path / "repo"
    for pkg in ("firmware", "protocol"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    boards = sorted((ROOT / "boards").glob("*.json"))
    name = boards[0].stem if boards else "tmpboard"
    if not boards:
        (src / "boards").mkdir()
        (src / "boards/tmpboard.json").write_text('{"name": "tmpboard"}')
    try:
        dp.build(src, tmp_path / "cache")
    except dp.DeployError as e:
        pytest.skip("repository tree does not compile yet: %s" % e)
    code, out, err = run(capsys, "--port", board.pty_path, "--board", name, "--device-id", "real",
                         "--key-file", key_file(tmp_path), "--registry", tmp_path / "reg.json", "--src", src, "--no-reset")
    assert code == 0, err
    assert (tmp_path / "flash/protocol/__init__.mpy").exists()


@pytest.mark.parametrize("dev_id,key,what", [
    ("Bad_ID", KEY, "bad device id"),
    ("toolongid", KEY, "bad device id"),
    ("", KEY, "bad device id"),
    ("ok", KEY[:-2], "bad key"),
    ("ok", KEY[:-1] + "g", "bad key"),
])
def test_bad_id_or_key(tmp_path, capsys, dev_id, key, what):
    code, out, err = run(capsys, "--port", "/nonexistent", "--board", "x", "--device-id", dev_id,
                         "--key-file", key_file(tmp_path, key), "--registry", tmp_path / "reg.json")
    assert code == 2 and err.startswith("error: " + what) and "Traceback" not in err
    assert key not in out + err
    assert not (tmp_path / "reg.json").exists()


def test_no_such_port(src, tmp_path, capsys):
    code, _, err = run(capsys, "--port", tmp_path / "ttyNOPE", "--board", "testboard", "--device-id", "a",
                       "--key-file", key_file(tmp_path), "--registry", tmp_path / "reg.json", "--src", src)
    assert code == 2 and err == "error: no such port: %s\n" % (tmp_path / "ttyNOPE")


def test_unknown_board(board, src, tmp_path, capsys):
    code, _, err = run(capsys, *args(board, src, tmp_path, **{"--board": "nope"}))
    assert code == 2 and "no board 'nope'" in err and "testboard" in err


def test_invalid_board_refused_before_copying(board, src, tmp_path, capsys):
    cfg = json.loads((src / "boards/testboard.json").read_text())
    cfg["pins"]["button"] = 99         # no such GPIO: boardcheck refuses it
    (src / "boards/testboard.json").write_text(json.dumps(cfg))
    code, _, err = run(capsys, *args(board, src, tmp_path))
    assert code == 2 and "testboard.json" in err and "pin" in err and "Traceback" not in err
    assert not (tmp_path / "flash/firmware").exists() and not (tmp_path / "reg.json").exists()


def test_port_busy(board, src, tmp_path, capsys):
    with serial.Serial(str(board.pty_path), exclusive=True):  # what mpremote holds while connected
        code, _, err = run(capsys, *args(board, src, tmp_path))
    assert code == 2 and err.startswith("error: port busy")


def test_not_micropython(src, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dp, "CONNECT_TIMEOUT", 1)
    master, slave = os.openpty()
    cat = subprocess.Popen(["cat"], stdin=slave, stdout=slave)  # echoes, never answers
    try:
        code, _, err = run(capsys, "--port", os.ttyname(slave), "--board", "testboard", "--device-id", "a",
                           "--key-file", key_file(tmp_path), "--registry", tmp_path / "reg.json", "--src", src)
    finally:
        cat.kill()
        cat.wait()
        os.close(master)
        os.close(slave)
    assert code == 2 and "is not a MicroPython device" in err and "Traceback" not in err


def test_mpy_version_mismatch(board, src, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dp, "mpy_cross_version", lambda: (5, 0))
    code, _, err = run(capsys, *args(board, src, tmp_path))
    assert code == 2 and "device runs mpy v6, mpy-cross emits v5.0" in err
    assert not (tmp_path / "flash/main.py").exists()


def test_full_filesystem_precheck(board, src, tmp_path, capsys, monkeypatch):
    # The unix port reports the host's disk; a tiny free space stands in for a full flash.
    monkeypatch.setattr(dp, "free_bytes", lambda t: (1000, 512))
    code, _, err = run(capsys, *args(board, src, tmp_path))
    assert code == 2 and "device filesystem full: need" in err
    assert not (tmp_path / "flash/main.py").exists() and not (tmp_path / "reg.json").exists()


def test_enospc_while_copying(board, src, tmp_path, capsys, monkeypatch):
    from mpremote.transport import TransportExecError
    from mpremote.transport_serial import SerialTransport

    real_exec = SerialTransport.exec

    def exec_(self, code, *a, **kw):  # the device's answer when its flash is full
        if code.startswith("w(d("):
            raise TransportExecError(1, "Traceback (most recent call last):\nOSError: [Errno 28] ENOSPC\n")
        return real_exec(self, code, *a, **kw)
    monkeypatch.setattr(SerialTransport, "exec", exec_)
    code, _, err = run(capsys, *args(board, src, tmp_path))
    assert code == 2 and err.startswith("error: device filesystem full while writing")


def test_garbled_answer_mid_deploy_is_a_lost_device(board, src, tmp_path, capsys, monkeypatch):
    # A board cut mid-command answers with whatever its fresh boot prints; mpremote decodes
    # a command's error output as UTF-8 and raises UnicodeDecodeError (seen in a CI run of
    # tests/hil/test_faults.py). That must be the one-line "lost the device", not a traceback.
    from mpremote.transport_serial import SerialTransport

    real_exec = SerialTransport.exec

    def exec_(self, code, *a, **kw):
        if code.startswith("f.close()"):
            b"\x00\xa3\xd1".decode()      # raises UnicodeDecodeError, as mpremote does
        return real_exec(self, code, *a, **kw)
    monkeypatch.setattr(SerialTransport, "exec", exec_)
    code, _, err = run(capsys, *args(board, src, tmp_path))
    assert code == 2 and "lost the device mid-deploy" in err and "garbled answer" in err, err
    assert len(err.strip().splitlines()) == 1


def test_reboot_output_mid_deploy_is_summed_up(board, src, tmp_path, capsys, monkeypatch):
    # mpremote quotes what the board said as a bytes repr; after a cut that is a fresh boot,
    # maybe with the traceback of a half-copied firmware (seen in a CI run of test_faults).
    # The one-line error keeps mpremote's sentence and says the board rebooted, no dump.
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    real_exec = SerialTransport.exec
    said = (b"MicroPython v1.29.0; virtual board\nTraceback (most recent call last):\n"
            b"  File \"firmware/main.mpy\", line 1, in boot\nValueError: incompatible .mpy file\n>>> ")

    def exec_(self, code, *a, **kw):
        if code.startswith("f.close()"):
            raise TransportError("could not complete raw paste: {}".format(said))
        return real_exec(self, code, *a, **kw)
    monkeypatch.setattr(SerialTransport, "exec", exec_)
    code, _, err = run(capsys, *args(board, src, tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "could not complete raw paste; the board rebooted; run deploy again" in err, err
    assert "Traceback" not in err and "MicroPython v" not in err


# ---- finding 6 of issue 11: the key never only on the command line (docs/THREAT_MODEL.md T23)
def test_key_on_the_command_line_is_refused(tmp_path, capsys):
    code, out, err = run(capsys, "--port", "/nonexistent", "--board", "x", "--device-id", "ok",
                         "--key", KEY, "--registry", tmp_path / "reg.json")
    assert code == 2 and err.startswith("error: --key puts the key where every user can read it")
    assert KEY not in out + err and not (tmp_path / "reg.json").exists()


def test_key_from_the_environment_or_generated_and_registered(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSUMABLES_KEY", KEY.upper())
    assert dp.device_key() == KEY
    monkeypatch.delenv("CONSUMABLES_KEY")
    a, b = dp.device_key(), dp.device_key()
    assert a != b and len(a) == 64 and int(a, 16) >= 0
    kf = tmp_path / "k"
    kf.write_text("zz")
    with pytest.raises(dp.DeployError, match="bad key"):
        dp.device_key(key_file=kf)
    with pytest.raises(dp.DeployError, match="cannot read key file"):
        dp.device_key(key_file=tmp_path / "missing")


def test_generated_key_is_the_one_provisioned_and_registered(board, src, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CONSUMABLES_KEY", raising=False)
    a = args(board, src, tmp_path)
    i = a.index("--key-file")
    del a[i:i + 2]
    code, out, err = run(capsys, *a)
    assert code == 0, err
    key = json.loads((tmp_path / "flash" / "provision.json").read_text())["key"]
    assert len(key) == 64 and key not in out + err
    assert json.loads((tmp_path / "reg.json").read_text())["devices"]["dev-1"]["key"] == key


def test_each_board_gets_only_what_it_runs(tmp_path):
    # the simulator and host-side modules stay off real boards, and so do the drivers a
    # board file does not name; the virtual boards get the simulator
    files = dp.build(ROOT, tmp_path / "cache", lines=False)
    total = sum(len(v) for v in files.values())
    seen = {}
    for p in sorted((ROOT / "boards").glob("*.json")):
        cfg = json.loads(p.read_text())
        got = {"/" + x.relative_to(ROOT).as_posix()[:-3] + ".mpy" for x in dp.sources(ROOT, cfg)}
        size = sum(len(files[f]) for f in got)
        seen[p.stem] = got
        print("%-22s %2d of %d modules, %6d of %d bytes (%d saved)"
              % (p.stem, len(got), len(files), size, total, total - size))
        for host in ("/firmware/cpython.mpy", "/firmware/boardcheck.mpy", "/protocol/wire.mpy"):
            assert host not in got, (p.stem, host)
        t = cfg["sensor"]["type"]
        assert "/firmware/sensors/%s.mpy" % t in got
        if cfg.get("mcu") == "virtual":
            assert "/firmware/hal_sim.mpy" in got and "/firmware/sensors/simworld.mpy" in got
        else:
            assert not [f for f in got if "/sim" in f or f.endswith("hal_sim.mpy") or f.endswith("hal_simx.mpy")]
            assert "/firmware/hal_esp32.mpy" in got
            others = set(dp.DRIVERS) - {t}
            assert not [f for f in got for o in others if f.startswith("/firmware/sensors/%s" % o)]
    assert seen["esp32-devkitc"] < set(files)


def test_refuses_a_unix_port_whose_root_is_the_host(tmp_path, monkeypatch, src):
    # a bare unix port behind a pty (no remount of / to a flash directory): deploy would
    # write firmware/ and main.py into the host's own /
    from host_tools import board as board_mod
    monkeypatch.setattr(board_mod, "BOOT_SCRIPT", "import os\nprint('; virtual board ')\n")
    with VirtualBoard(tmp_path / "pty2", tmp_path / "flash2") as b:
        with pytest.raises(dp.DeployError, match="host's filesystem"):
            dp.deploy(b.pty_path, "testboard", "dev-1", KEY, registry=str(tmp_path / "r.json"),
                      src=src, cache=str(tmp_path / "c"), log=lambda m: None)
    assert not (Path("/") / "main.py").exists() or (Path("/") / "main.py").stat().st_mtime < time.time() - 60

