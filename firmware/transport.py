"""Transport interface: send(frame_bytes) and poll() -> list of frame chunks, non-blocking;
ready() -> whether the link is up (the agent takes nothing out of its outbox before), and
send() returns False for a frame the link refused (the outbox takes it back).

A chunk is what lies between two 0x00 delimiters (protocol.wire.unpack takes it). Every
transport carries the same framed bytes (COBS + CRC), a UART stream or one UDP datagram
per frame, so one parser serves all. open() picks the implementation from provisioning
(which wins) or the board file: {"type": "serial", "uart": {"id", "tx", "rx", "baud"}}
(no "uart": the USB REPL line, stdin/stdout) or {"type": "udp", "host", "port"}.
"""


class Null:
    """Swallows frames (benchmarks, tests); `sent` counts them, `inbox` feeds poll()."""

    def __init__(self):
        self.sent = 0
        self.last = None
        self.inbox = []

    def send(self, frame):
        self.sent += 1
        self.last = frame
        return True

    def poll(self):
        if not self.inbox:
            return self.inbox
        out = self.inbox
        self.inbox = []
        return out

    def ready(self):
        return True


def open(prov, board):
    t = prov.get("transport") or board.get("transport") or {"type": "serial"}
    kind = t.get("type", "serial")
    if kind == "serial":
        from firmware import transport_serial
        return transport_serial.open(t, board)
    if kind == "udp":
        from firmware import transport_udp
        return transport_udp.open(t, prov)
    if kind == "null":
        return Null()
    raise ValueError("unknown transport: %s" % kind)
