"""The virtual board's REPL line obeys micropython.kbd_intr as a bare-metal port does: a
0x03 byte raises KeyboardInterrupt only while the interrupt char is Ctrl-C (pyexec sets
it while code runs), and is plain data after kbd_intr(-1) (shared/runtime/interrupt_char.c;
ports/unix/unix_mphal.c, mp_hal_set_interrupt_char)."""
import time

import serial

from test_board import board, mpremote, wait_for  # noqa: F401  (board is a fixture)

READER = """import micropython, select, sys
micropython.kbd_intr({char})
open('/started', 'w').close()
p = select.poll()
p.register(sys.stdin, select.POLLIN)
got = b''
try:
    while not got.endswith(b'END'):
        if p.poll(20):
            got += sys.stdin.buffer.read(1)
    open('/got.bin', 'wb').write(got)
except KeyboardInterrupt:
    open('/interrupted', 'w').write(repr(got))
"""


def _start(board, tmp_path, char):
    flash = tmp_path / "flash"
    (flash / "main.py").write_text(READER.format(char=char))
    board.reset()
    assert wait_for(lambda: (flash / "started").exists())
    return flash


def _write(board, data):
    with serial.Serial(board.pty_path, 115200, timeout=0) as s:
        s.write(data)
        s.flush()
        time.sleep(0.2)   # the relay reads it before the port closes on our side


def test_ctrl_c_is_data_after_kbd_intr_off(board, tmp_path):
    flash = _start(board, tmp_path, -1)
    sent = b"a\x03b\r\x03\x03cEND"
    _write(board, sent)
    assert wait_for(lambda: (flash / "got.bin").exists(), timeout=10)
    assert (flash / "got.bin").read_bytes() == sent
    assert not (flash / "interrupted").exists()
    assert board.crashes == []


def test_a_lone_ctrl_c_interrupts_while_kbd_intr_is_on(board, tmp_path):
    flash = _start(board, tmp_path, 3)
    _write(board, b"ab\x03cd")
    assert wait_for(lambda: (flash / "interrupted").exists())
    # (whether "ab" was read first is a race on a board too: the ISR raises at once)
    assert not (flash / "got.bin").exists()
    assert board.crashes == []


def test_ctrl_c_stops_code_run_from_the_raw_repl(board):
    # mpremote's `exec` of a loop: a board's pyexec sets the interrupt char while it runs.
    mpremote(board.pty_path, "exec", "print(1)")   # main.py out of the way: a prompt
    with serial.Serial(board.pty_path, 115200, timeout=0.1) as s:
        s.write(b"\r\x03\r\x01")
        out = b""
        end = time.monotonic() + 10
        while b"raw REPL; CTRL-B to exit\r\n>" not in out and time.monotonic() < end:
            out += s.read(256)
        assert out.endswith(b">"), out
        s.write(b"import time\nwhile True:\n    time.sleep_ms(5)\n\x04")
        out = b""
        while b"OK" not in out and time.monotonic() < end:
            out += s.read(256)
        assert out.startswith(b"OK"), out
        time.sleep(0.3)
        s.write(b"\x03")
        end = time.monotonic() + 10
        while b"KeyboardInterrupt" not in out and time.monotonic() < end:
            out += s.read(256)
        assert b"KeyboardInterrupt" in out, out
        s.write(b"\r\x02")
    out = mpremote(board.pty_path, "resume", "exec", "print('still', 'there')")
    assert "still there" in out
