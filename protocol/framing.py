# Serial framing: 0x00 | COBS(body | CRC-16) | 0x00
#
# COBS (Cheshire & Baker, 1999) removes every 0x00 from the frame so 0x00 can delimit
# frames; the leading 0x00 flushes any log text printed before the frame, so frames and
# REPL/print output share one UART and the receiver resynchronises on the next 0x00.
# CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, big-endian on the wire) catches line noise
# cheaply before the MAC is checked; it is the same CRC as CPython's binascii.crc_hqx.
# The same bytes are sent as one UDP datagram on Wi-Fi, so every transport shares a parser.
from protocol.errors import FrameError
try:
    from micropython import const
except ImportError:  # CPython: const(x) is just x
    const = int  # type: ignore[assignment]

_MAX_BODY = const(512)  # bytes of envelope; larger frames are rejected before decoding
MAX_FRAME = _MAX_BODY + 2 + _MAX_BODY // 254 + 2  # COBS-encoded body + CRC, no delimiters


def _crc16(data, crc=0xFFFF):
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


try:  # CPython: the same CRC in C (binascii.crc_hqx is CRC-16/CCITT with a given init)
    from binascii import crc_hqx

    def crc16(data, crc=0xFFFF):
        return crc_hqx(data, crc)
except ImportError:  # MicroPython has no crc_hqx: the bitwise version above
    crc16 = _crc16


def cobs_encode(data):
    out = bytearray(len(data) + len(data) // 254 + 2)
    code_pos = 0
    o = 1
    code = 1
    for b in data:
        if b == 0:
            out[code_pos] = code
            code_pos = o
            o += 1
            code = 1
        else:
            out[o] = b
            o += 1
            code += 1
            if code == 0xFF:
                out[code_pos] = code
                code_pos = o
                o += 1
                code = 1
    out[code_pos] = code
    return bytes(out[:o])


def cobs_decode(data):
    n = len(data)
    out = bytearray(n)
    i = 0
    o = 0
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError("zero byte inside a COBS frame")
        i += 1
        end = i + code - 1
        if end > n:
            raise FrameError("COBS block runs past the end of the frame")
        while i < end:
            b = data[i]
            if b == 0:
                raise FrameError("zero byte inside a COBS frame")
            out[o] = b
            o += 1
            i += 1
        if code < 0xFF and i < n:
            out[o] = 0
            o += 1
    return bytes(out[:o])


def encode_frame(body):
    """Frame an envelope for the wire: 00 | COBS(body | crc16) | 00."""
    if len(body) > _MAX_BODY:
        raise FrameError("body of %d bytes exceeds %d" % (len(body), _MAX_BODY))
    c = crc16(body)
    return b"\x00" + cobs_encode(bytes(body) + bytes((c >> 8, c & 0xFF))) + b"\x00"


def decode_frame(chunk):
    """Body of one frame (bytes between two 0x00 delimiters); FrameError if damaged."""
    if len(chunk) > MAX_FRAME:
        raise FrameError("frame of %d bytes exceeds %d" % (len(chunk), MAX_FRAME))
    raw = cobs_decode(chunk)
    if len(raw) < 3:
        raise FrameError("frame too short")
    body = raw[:-2]
    if crc16(body) != (raw[-2] << 8 | raw[-1]):
        raise FrameError("bad CRC")
    return body


class Deframer:
    """Splits a byte stream into frame chunks on 0x00, with a bounded buffer.

    feed(data) returns a list of complete chunks (still COBS-encoded; pass each to
    decode_frame). Bytes that grow past MAX_FRAME without a delimiter are dropped and
    counted in `overflows` (text floods, a stuck line) and the deframer resynchronises
    on the next 0x00.
    """

    def __init__(self, max_frame=MAX_FRAME):
        self.max = max_frame
        self.buf = bytearray()
        self.skipping = False
        self.overflows = 0

    def feed(self, data):
        chunks = []
        start = 0
        n = len(data)
        while start < n:
            i = data.find(b"\x00", start) if hasattr(data, "find") else bytes(data).find(b"\x00", start)
            if i < 0:
                part = data[start:]
                if not self.skipping:
                    if len(self.buf) + len(part) > self.max:
                        self.overflows += 1
                        self.skipping = True
                        self.buf = bytearray()
                    else:
                        self.buf.extend(part)
                break
            if not self.skipping:
                part = data[start:i]
                if len(self.buf) + len(part) > self.max:
                    self.overflows += 1
                else:
                    self.buf.extend(part)
                    if self.buf:
                        chunks.append(bytes(self.buf))
            self.skipping = False
            self.buf = bytearray()
            start = i + 1
        return chunks
