"""`baud=`: the virtual board's line paced as a UART (8N1: baud / 10 bytes a second) both
ways, as a USB-UART bridge at 115200 would carry it. Lower bounds only: a loaded machine can
make the line slower, never faster."""
import time

from host_tools.board import VirtualBoard
from test_board import mpremote


def test_a_paced_line_is_no_faster_than_its_baud_rate(tmp_path):
    with VirtualBoard(tmp_path / "pty", tmp_path / "flash", baud=9600) as b:
        mpremote(b.pty_path, "exec", "print(1)")            # main.py out of the way
        (tmp_path / "big.txt").write_bytes(b"x" * 3000)
        t = time.monotonic()
        mpremote(b.pty_path, "fs", "cp", str(tmp_path / "big.txt"), ":big.txt")
        down = time.monotonic() - t
        t = time.monotonic()
        out = mpremote(b.pty_path, "exec", "print('y' * 3000)")
        up = time.monotonic() - t
    assert (tmp_path / "flash" / "big.txt").read_bytes() == b"x" * 3000
    assert out.count("y") == 3000
    # 3000 bytes at 960 B/s: 3.1 s (the copy sends it base64- or hex-encoded: more)
    assert down >= 3000 / 960 and up >= 3000 / 960, (down, up)
