# The one exception family for bad input on the wire. Every decoder in protocol/ and
# host_tools/ raises a subclass of ProtocolError (itself a ValueError) for hostile or
# damaged bytes, never anything else, so callers can count and drop with one except.


class ProtocolError(ValueError):
    pass


class DecodeError(ProtocolError):
    """Malformed, truncated or over-limit CBOR, or a message that breaks the schema."""


class FrameError(ProtocolError):
    """A serial frame with bad COBS, a bad CRC, or over the size limit."""


class AuthError(ProtocolError):
    """A COSE_Mac0 envelope that does not verify (bad tag, unknown kid, wrong alg)."""


class ReplayError(AuthError):
    """A correctly signed envelope whose sequence number was already seen."""
