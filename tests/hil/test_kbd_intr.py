"""The agent on the REPL line turns kbd_intr off (a downlink frame may hold 0x03) and obeys
mpremote's "\\r\\x03" itself (firmware/transport_serial.py), on a virtual board whose line
obeys kbd_intr as a bare-metal port's does (tests/host/test_board_kbd_intr.py)."""
import sys
import time
from pathlib import Path

import pytest
import serial

from host_tools import deploy as dp
from host_tools.board import VirtualBoard

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from test_board import mpremote, wait_for  # noqa: E402

KEY = "0123456789abcdef" * 4


def test_stray_ctrl_c_bytes_do_not_stop_the_agent_but_mpremote_does(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("virtual board only")
    with VirtualBoard(tmp_path / "pty", tmp_path / "flash", speed=1000, seed=3) as b:
        dp.deploy(b.pty_path, "virtual", "toner-07", KEY, registry=str(tmp_path / "reg.json"),
                  log=lambda m: None)
        boots = b.boots
        with serial.Serial(b.pty_path, 115200, timeout=0.2) as s:
            end = time.monotonic() + 20
            out = b""
            while out.count(b"\x00") < 2 and time.monotonic() < end:   # the agent is sending
                out += s.read(4096)
            assert out.count(b"\x00") >= 2, out
            # a lone 0x03, "\r\x03" inside a frame (0x00, COBS code, 0xD1 ...), text with 0x03
            s.write(b"\x03\x00\x07\xd1\x0d\x03\x01\x02\x03\x00x\x03y\x00")
            s.flush()
            assert not b.wait_ready(3), "a stray 0x03 stopped main.py"
            out = s.read(65536)
            end = time.monotonic() + 20
            while out.count(b"\x00") < 2 and time.monotonic() < end:
                out += s.read(4096)
            assert out.count(b"\x00") >= 2, "the agent went quiet"
        assert b.boots == boots and b.crashes == []
        # mpremote's interrupt, which the firmware recognises itself, gives the REPL
        out = mpremote(b.pty_path, "exec", "import machine; print('repl', machine.reset_cause())")
        assert "repl" in out
        assert b.crashes == [], b.crashes   # a Ctrl-C obeyed is not a crash
