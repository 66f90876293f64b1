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
