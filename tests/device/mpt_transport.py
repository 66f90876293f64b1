# firmware/transport*.py: serial over a (simulated) UART, Ctrl-C recognition, UDP loopback.
# heapsize: 128K
import sys
if sys.implementation.name != "micropython":
    import pytest
    pytest.skip("MicroPython test file, run by tests/conftest.py", allow_module_level=True)
import socket
import time

from firmware import hal, transport
from firmware.transport_serial import Serial
from firmware.transport_udp import UDP
from protocol import wire

KEY = bytes(range(32))


def frame(seq):
    return wire.pack(KEY, b"d", seq, {1: seq, 2: 50, 6: 9})


def test_serial_uart_roundtrip_with_log_text_between_frames():
    u = hal.UART(1)      # the simulated HAL's in-memory UART (firmware/hal_simx.py)
    s = Serial(uart=u)
    s.send(frame(1))
    assert bytes(u.tx) == frame(1)
    u.rx.extend(b"some log line\r\n" + frame(2) + b"noise" + frame(3)[:5])
    got = s.poll()
    # the text before the first 0x00 comes out as a chunk too; it fails to unpack
    seqs = []
    for c in got:
        try:
            seqs.append(wire.unpack(c, lambda k: KEY)[1])
        except ValueError:
            pass
    assert seqs == [2]
    u.rx.extend(frame(3)[5:])
    seqs = [wire.unpack(c, lambda k: KEY)[1] for c in s.poll() if c != b"noise"]
    assert seqs == [3], seqs
    assert s.poll() == []


def _interrupted(s):
    try:
        s.poll()
    except KeyboardInterrupt:
        return True
    return False


def test_serial_recognises_mpremote_interrupt_only_outside_frames():
    u = hal.UART(1)      # the simulated HAL's in-memory UART (firmware/hal_simx.py)
    s = Serial(uart=u, kbd=True)
    # a frame (0x00, COBS code, 0xD1 ...) holding "\r\x03": data, not an interrupt
    u.rx.extend(b"\x00\x07\xd1\x0d\x03\x01\x02\x03\x00")
    assert not _interrupted(s)
    u.rx.extend(b"\r\x03")
    assert _interrupted(s)


def test_serial_interrupt_after_text_on_the_line():
    # what a terminal's typing or a half-sent command leaves must not hide the Ctrl-C
    for before in (b"print(1", b"\x00\x07\xd1\x01\x02\x03\x04\x05\x00typed", b"\x00\x00ab"):
        u = hal.UART(1)
        s = Serial(uart=u, kbd=True)
        u.rx.extend(before)
        assert not _interrupted(s)
        u.rx.extend(b"\r\x03")
        assert _interrupted(s), before


def test_open_picks_from_provisioning():
    t = transport.open({"transport": {"type": "null"}}, {})
    assert t.send(b"x") and t.sent == 1 and t.poll() == []
    t = transport.open({}, {"transport": {"type": "serial", "uart": {"id": 1, "tx": 17, "rx": 16}}})
    assert isinstance(t, Serial) and t.uart is not None


def test_udp_loopback_roundtrip():
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(socket.getaddrinfo("127.0.0.1", 0)[0][-1])
    # find the port the kernel gave us: bind to a fixed high port instead if unknown
    port = None
    for p in range(47000, 47100):
        try:
            srv.close()
            srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            srv.bind(socket.getaddrinfo("127.0.0.1", p)[0][-1])
            port = p
            break
        except OSError:
            pass
    assert port
    u = UDP("127.0.0.1", port)
    assert u.ready() and u.poll() == []
    assert u.send(frame(7))
    data, addr = srv.recvfrom(600)
    assert data == frame(7)
    srv.sendto(frame(8), addr)
    srv.sendto(frame(9), addr)
    got = []
    for _ in range(50):
        got += u.poll()
        if len(got) >= 2:
            break
        time.sleep_ms(10)
    assert [wire.unpack(c, lambda k: KEY)[1] for c in got] == [8, 9]
    u.close()
    srv.close()
