"""Serial transport: a UART from the board file, or the USB REPL line (stdin/stdout).

On the REPL line frames share the wire with print() output: every frame starts with 0x00,
so the bridge resynchronises at each one and skips the text in between. Reading is
non-blocking (select.poll, then one byte at a time: the unix port's stdin.read(n) would
block for all n bytes; downlink traffic is a few dozen bytes per message, so that is cheap).

Ctrl-C: a COBS frame may contain 0x03, which would raise KeyboardInterrupt in the middle
of the agent, so on the REPL line we switch it off (micropython.kbd_intr(-1)) and recognise
mpremote's interrupt ourselves: it sends "\\r\\x03". It counts unless it is inside a frame,
which is 0x00, the COBS code, then 0xD1 (the COSE tag) up to the next 0x00: so text before
it (a terminal's typing, a half-sent command) does not hide it. Every port: the virtual
board's relay obeys kbd_intr as a board's UART does (host_tools/board.py, _pump).
"""
import sys

from protocol.framing import Deframer

_MAX_READ = 256   # bytes per poll(): bounded work per cycle even under a text flood


class Serial:
    def __init__(self, uart=None, out=None, inp=None, kbd=False):
        self.uart = uart
        self.df = Deframer()
        self._b1 = bytearray(1)
        self._prev = 0
        self._n0 = 2          # bytes since the last 0x00 (2: none seen, not in a frame)
        self._fr = False      # inside a frame: its second byte was 0xD1
        self._kbd = kbd       # we detect "\r\x03" (kbd_intr is off)
        self.sent = 0
        if uart is None:
            import select
            self.out = out or sys.stdout.buffer
            self.inp = inp or sys.stdin.buffer
            self._poll = select.poll()
            self._poll.register(inp or sys.stdin, select.POLLIN)

    def ready(self):
        return True

    def send(self, frame):
        if self.uart is not None:
            self.uart.write(frame)
        else:
            self.out.write(frame)
            try:
                self.out.flush()
            except (AttributeError, OSError):
                pass
        self.sent += 1
        return True

    def _byte(self):
        if self.uart is not None:
            if not self.uart.any():
                return -1
            n = self.uart.readinto(self._b1) if hasattr(self.uart, "readinto") else None
            if n is None:
                b = self.uart.read(1)
                return b[0] if b else -1
            return self._b1[0] if n else -1
        if not self._poll.poll(0):
            return -1
        if not self.inp.readinto(self._b1):
            return -1
        return self._b1[0]

    def poll(self):
        chunks = None
        buf = bytearray()
        for _ in range(_MAX_READ):
            b = self._byte()
            if b < 0:
                break
            if self._kbd and b == 3 and self._prev == 13 and not self._fr:
                raise KeyboardInterrupt()
            if b == 0:
                self._n0, self._fr = 0, False
            elif self._n0 < 2:
                self._n0 += 1
                if self._n0 == 2:
                    self._fr = b == 0xD1
            self._prev = b
            buf.append(b)
        if buf:
            chunks = self.df.feed(buf)
        return chunks or []


def open(t, board):
    """From the transport section: "uart": {"id", "tx", "rx", "baud"} or nothing (REPL)."""
    u = t.get("uart")
    if u:
        from firmware import hal
        pins = board.get("pins", {})
        uart = hal.UART(u.get("id", 1), u.get("baud", 115200),
                        tx=u.get("tx", pins.get("uart_tx")), rx=u.get("rx", pins.get("uart_rx")))
        return Serial(uart=uart)
    try:
        import micropython   # take Ctrl-C over (see above); CPython has no such module
        micropython.kbd_intr(-1)
    except (ImportError, AttributeError):
        return Serial()
    return Serial(kbd=True)
