"""consumables monitor --once: a snapshot from the bridge's store and status file."""
from host_tools import registry as reg
from host_tools.bridge import Bridge
from host_tools.monitor import main_monitor, tte_text
from test_bridge_support import HELLO, Replies, frame, level, make_registry


def test_monitor_once_shows_device_and_level(tmp_path, capsys):
    db = tmp_path / "b.sqlite"
    b = Bridge(db, reg.Registry(make_registry(tmp_path)), [], [], log=lambda *a, **k: None)
    r = Replies()
    b.core.handle_chunk(frame(1, HELLO)[1:-1], r)
    b.core.handle_chunk(frame(2, level(480, 48, 20, 500, 40))[1:-1], r)
    b.core.handle_chunk(b"junk", r)
    b.write_status()
    b.store.close()
    assert main_monitor(["--db", str(db), "--once"]) == 0
    out = capsys.readouterr().out
    assert "dev1" in out and "480 g" in out and "48%" in out and "20.8d ± 40h" in out
    assert "full" in out  # consent from the hello
    assert "stored=2" in out and "noise=1" in out


def test_monitor_without_status_file(tmp_path, capsys):
    db = tmp_path / "b.sqlite"
    b = Bridge(db, reg.Registry(make_registry(tmp_path)), [], [], log=lambda *a, **k: None)
    b.core.handle_chunk(frame(1)[1:-1], Replies())
    b.store.close()
    assert main_monitor(["--db", str(db), "--once"]) == 0
    out = capsys.readouterr().out
    assert "dev1" in out and "no status file" in out


def test_monitor_missing_db_exit_2(tmp_path, capsys):
    assert main_monitor(["--db", str(tmp_path / "none.sqlite"), "--once"]) == 2
    err = capsys.readouterr().err
    assert "no bridge database" in err and "Traceback" not in err


def test_tte_text():
    assert tte_text({"tte_h": 30, "tte_err_h": 5}) == "30h ± 5h"
    assert tte_text({}) == "-"
