# One call each way between a message map and the bytes on the wire:
#   payload map --cbor--> bytes --COSE_Mac0--> envelope --framing--> frame
from protocol import cbor, cose, framing, messages
from protocol.errors import DecodeError


def pack(key, kid, seq, payload, aad=cose.AAD_UP):
    """Payload map -> framed, authenticated bytes ready for a UART or a datagram."""
    return framing.encode_frame(cose.encode(key, kid, seq, cbor.dumps(payload), aad))


def unpack(chunk, key_for, aad=cose.AAD_UP, allowed=None):
    """A chunk between 0x00 delimiters -> (kid, seq, payload). Raises ProtocolError."""
    body = framing.decode_frame(chunk)
    kid, seq, raw = cose.verify(body, key_for, aad)
    payload = cbor.loads(raw)
    messages.validate(payload, allowed)
    return kid, seq, payload


def unframe(frame):
    """A whole frame as pack() makes it (with delimiters) -> the chunk inside."""
    f = bytes(frame).strip(b"\x00")
    if b"\x00" in f:
        raise DecodeError("more than one frame")
    return f
