"""consumables plot: a PNG with level history, forecast band and event markers."""
import time

from host_tools import codec
from host_tools.plot import main_plot
from host_tools.store import Store
from test_bridge_support import DEV, KEY, frame, level

PNG = b"\x89PNG\r\n\x1a\n"


def _store_history(db):
    """30 days of reports with a refill and an order, stored as the bridge would."""
    s = Store(db)
    t0 = time.time() - 30 * 86400
    seq = 0
    for day in range(30):
        fill = 90 - 3 * day if day < 20 else 100 - 4 * (day - 20)
        seq += 1
        payload = level(fill * 10, fill, 30, int(fill * 10 / 30 * 24), 24)
        for p in [payload] + ([{0: 3, 1: 2, 2: 1}] if day == 18 else []) + ([{0: 3, 1: 3, 2: 2}] if day == 20 else []):
            m = codec.decode_chunk(frame(seq, p)[1:-1], lambda k: KEY)
            s.store_message(m, b"x", "test", [], now=t0 + day * 86400 + seq)
            seq += 1
    s.queue_downlink(DEV, "order_status", {"key": "dev1:1", "status": 2})
    s.mark_downlink_sent(1, 5, "test", now=t0 + 19 * 86400)
    s.close()


def test_plot_writes_png(tmp_path, capsys):
    db = tmp_path / "b.sqlite"
    _store_history(db)
    out = tmp_path / "x.png"
    assert main_plot([DEV, "-o", str(out), "--db", str(db)]) == 0
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 10_000
    msg = capsys.readouterr().out
    assert "30 reports" in msg and "2 events" in msg and "empty ≈" in msg


def test_plot_errors_exit_2(tmp_path, capsys):
    assert main_plot([DEV, "-o", str(tmp_path / "x.png"), "--db", str(tmp_path / "none.sqlite")]) == 2
    Store(tmp_path / "b.sqlite").close()
    assert main_plot(["ghost", "-o", str(tmp_path / "x.png"), "--db", str(tmp_path / "b.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "no level reports for ghost" in err and "Traceback" not in err


def _accelerated_history(db, speed):
    """A simulated month from a board at `speed`: one report per simulated day, so the
    bridge receives them 86400 / speed wall seconds apart."""
    s = Store(db)
    t0 = time.time() - 60
    for day in range(30):
        fill = 90 - 3 * day
        m = codec.decode_chunk(frame(day + 1, level(fill * 10, fill, 30, fill * 8, 12))[1:-1], lambda k: KEY)
        s.store_message(m, b"x", "serial:/dev/pts/9", [], now=t0 + day * 86400 / speed)
    s.close()


def test_accelerated_board_is_drawn_on_its_simulated_clock(tmp_path):
    from datetime import timedelta
    from host_tools.plot import plot
    db = tmp_path / "b.sqlite"
    _accelerated_history(db, 43200.0)           # a day every 2 s
    s = Store(db, readonly=True)
    try:
        wall = plot(s, DEV, str(tmp_path / "wall.png"))
        sim = plot(s, DEV, str(tmp_path / "sim.png"), speed=43200.0)
    finally:
        s.close()
    assert wall["span"] < timedelta(minutes=1)                    # a vertical line
    assert abs(sim["span"] - timedelta(days=29)) < timedelta(minutes=1)
    # the forecast (simulated hours) starts where the last report is on the same clock
    assert sim["empty"] - wall["empty"] > timedelta(days=28)


def test_flash_dir_gives_the_speed(tmp_path, capsys):
    """The speed comes from the board's world state file, written by the firmware's own code."""
    import json
    from array import array
    from firmware.sensors import simstate

    class World:
        data = array("d", [0.0] * 40)
        ints = array("I", [0] * 12)
        speed, rate, refill_count = 43200.0, 1.0, 0
        state = str(tmp_path / "flash" / "world.bin")

        def level(self, t):
            pass

    (tmp_path / "flash").mkdir()
    (tmp_path / "flash" / "sim.json").write_text(json.dumps({"speed": 1000, "state": "world.bin"}))
    simstate.save(World())
    from host_tools.plot import board_speed
    assert board_speed(tmp_path / "flash") == 43200.0      # the live speed, not sim.json's first one
    db = tmp_path / "b.sqlite"
    _accelerated_history(db, 43200.0)
    out = tmp_path / "x.png"
    assert main_plot([DEV, "-o", str(out), "--db", str(db), "--flash", str(tmp_path / "flash")]) == 0
    assert out.read_bytes()[:8] == PNG
    assert main_plot([DEV, "-o", str(out), "--db", str(db), "--flash", str(tmp_path)]) == 2
    assert "not a virtual board's flash directory" in capsys.readouterr().err
    assert main_plot([DEV, "-o", str(out), "--db", str(db), "--speed", "0"]) == 2
