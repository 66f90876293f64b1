"""consumables monitor --once: a snapshot from the bridge's store and status file."""
from host_tools import registry as reg
from host_tools.bridge import Bridge
from host_tools.monitor import main_monitor, tte_text
from ptyterm import drain_until_exit, read_until
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


def partial_db(path):
    # what a reader sees while the bridge is creating its database: the file and the
    # first tables, not yet the rest
    import sqlite3
    from host_tools.store import SCHEMA
    con = sqlite3.connect(path)
    con.execute(SCHEMA.split(";")[0])
    con.commit()
    con.close()


def test_monitor_db_being_created_is_not_ready(tmp_path, capsys):
    db = tmp_path / "b.sqlite"
    partial_db(db)
    assert main_monitor(["--db", str(db), "--once"]) == 2
    err = capsys.readouterr().err
    assert "not ready yet" in err and "Traceback" not in err
    # the live view and the demo wait for it instead of ending
    from host_tools import demo, monitor
    from rich.console import Console
    console = Console(width=120, record=True)
    console.print(monitor.screen(str(db)), demo.view(db, ["deployed"]))
    text = console.export_text()
    assert "not ready yet" in text and "waiting for the bridge to start" in text
    # once the bridge has opened it, the same file shows its devices
    b = Bridge(db, reg.Registry(make_registry(tmp_path)), [], [], log=lambda *a, **k: None)
    b.core.handle_chunk(frame(1, HELLO)[1:-1], Replies())
    b.store.close()
    console.print(monitor.screen(str(db)))
    assert "dev1" in console.export_text()


def test_monitor_not_a_database_exit_2(tmp_path, capsys):
    db = tmp_path / "b.sqlite"
    db.write_bytes(b"this is not an sqlite file, it is text\n" * 100)
    assert main_monitor(["--db", str(db), "--once"]) == 2
    err = capsys.readouterr().err
    assert "cannot open database" in err and "Traceback" not in err


def test_status_file_devices_as_store_devices(tmp_path):
    """The status file's devices (Store.devices_json: stored JSON spliced in) say exactly
    what Store.devices() says: level, hello, consent, queue, downlinks, a device with no
    level yet; and the rest of the file is status()."""
    import json
    db = tmp_path / "b.sqlite"
    regpath = make_registry(tmp_path)
    b = Bridge(db, reg.Registry(regpath), [], [], log=lambda *a, **k: None)
    b.core.uplinks = ["jsonl:/dev/null"]
    r = Replies()
    b.core.handle_chunk(frame(1, HELLO)[1:-1], r)
    b.core.handle_chunk(frame(2, level(480, 48, 20, 500, 40))[1:-1], r)
    b.store.queue_downlink("dev1", "config", {"report_s": 60})
    b.store.db.execute("INSERT INTO devices(device) VALUES ('quiet-one')")
    b.write_status()
    doc = json.loads(b.status_file.read_text())
    want = b.status()
    assert doc["devices"] == want["devices"] == b.store.devices()
    assert [d["device"] for d in doc["devices"]] == ["dev1", "quiet-one"]
    dev1 = doc["devices"][0]
    assert dev1["level"]["remaining"] == 480 and dev1["hello"]["type"] == "hello"
    assert dev1["queue"] == 2 and dev1["downlink_pending"] == 1
    assert doc["devices"][1]["level"] is None and doc["devices"][1]["hello"] is None
    assert {k: v for k, v in doc.items() if k not in ("updated_at", "devices")} == \
        {k: v for k, v in want.items() if k not in ("updated_at", "devices")}
    b.store.close()


def test_live_monitor_quits_on_ctrl_c_whenever_it_lands(tmp_path):
    """Ctrl-C at any moment of the live view (starting, reading, refreshing) quits it
    with status 0 at once, while the terminal keeps reading."""
    import os
    import pty
    import random
    import signal
    import subprocess
    import sys
    import time
    db = tmp_path / "b.sqlite"
    b = Bridge(db, reg.Registry(make_registry(tmp_path)), [], [], log=lambda *a, **k: None)
    b.core.handle_chunk(frame(1, HELLO)[1:-1], Replies())
    b.write_status()
    b.store.close()
    rnd = random.Random(7)
    for _ in range(6):
        mo, so = pty.openpty()
        m = subprocess.Popen([sys.executable, "-m", "host_tools.monitor", "--db", str(db), "--interval", "0.01"],
                             stdin=subprocess.DEVNULL, stdout=so, stderr=so,
                             env=dict(os.environ, COLUMNS="160", LINES="40"))
        os.close(so)
        out = read_until(mo, lambda o: b"dev1" in o, 20)
        time.sleep(rnd.random() * 0.3)
        m.send_signal(signal.SIGINT)
        out = drain_until_exit(mo, m, 5, out)
        os.close(mo)
        if m.poll() is None:
            m.kill()
        assert m.wait(5) == 0, out[-1500:]
        assert b"dev1" in out


def test_a_long_link_never_squeezes_the_device_id(tmp_path):
    # a bridge on a serial port deep in a temp directory (a pytest worker's, a udev
    # by-path name): the table was wider than the terminal, and rich shortened every
    # column to fit, the device id to "toner-…", the one column a reader looks for
    import io
    from rich.console import Console
    from host_tools.monitor import render
    link = "serial:/tmp/pytest-of-root/pytest-10/popen-gw0/test_readme_parts_on_their_own0/vb"
    devs = [{"device": "toner-01", "consent": 4, "last_seen": 1e9, "link": link,
             "level": {"remaining": 480, "fill_pct": 48, "rate_per_day": 20}}]
    for width in (60, 80, 100, 160):
        con = Console(width=width, record=True, file=io.StringIO())
        con.print(render(devs, None, now=1e9 + 5))
        out = con.export_text()
        row = [x for x in out.splitlines() if "toner" in x]
        assert row and "toner-01" in row[0] and "full" in row[0] and "48%" in row[0], out
        assert "5s ago" in row[0], out
        if width >= 80:
            assert "480" in row[0], out
        if width == 160:                 # the link's end (the port's name) is what is kept
            assert "serial:..." in row[0] and "/vb" in row[0], out
        assert max(len(x) for x in out.splitlines()) <= width, out
