# COSE_Mac0 (RFC 9052 §6.2) with HMAC 256/64 (alg 4, RFC 9053 §3.1), built on the small
# CBOR codec and hashlib.sha256, so it runs on MicroPython (which has no hmac module).
#
#   COSE_Mac0 = #6.17([ protected: bstr .cbor {1: 4, 6: partial_iv},
#                       unprotected: {4: kid},
#                       payload: bstr, tag: bstr .size 8 ])
#
# The message sequence number travels as the Partial IV (label 6) in the *protected*
# header, as OSCORE (RFC 8613) does, so it is covered by the MAC and any COSE library
# sees it. The kid (label 4) names the device; it selects the key, so changing it only
# makes verification fail. The external AAD binds the direction (b"u" uplink, b"d"
# downlink), so a frame can never be reflected back to the device as a command.
import hashlib
try:
    from micropython import const
except ImportError:  # CPython: const(x) is just x
    const = int  # type: ignore[assignment]

from protocol import cbor
from protocol.errors import AuthError, DecodeError

# the _X consts are folded at compile time (free on the device); the public names are
# for the host tools
_ALG = const(4)
_TAG_MAC0 = const(17)
_TAG_LEN = const(8)
ALG_HMAC_256_64 = _ALG
TAG_MAC0 = _TAG_MAC0
TAG_LEN = _TAG_LEN
AAD_UP = b"u"
AAD_DOWN = b"d"
MAX_SEQ = (1 << 40) - 1  # Partial IV is at most 5 bytes (as in OSCORE)


def hmac_sha256(key, msg):
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    # the pads by a loop (a generator would be a code object in RAM), in two 64-byte
    # buffers: no 128-byte temporaries, which a fragmented heap may have no room for
    ipad = bytearray(64)
    opad = bytearray(64)
    n = len(key)
    for i in range(64):
        k = key[i] if i < n else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    inner = hashlib.sha256(ipad)
    inner.update(msg)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def piv_bytes(seq):
    # minimal big-endian, zero as one 0x00 byte (OSCORE §6.1)
    if seq < 0 or seq >> 40:  # seq > MAX_SEQ
        raise ValueError("sequence number out of range")
    out = bytearray()
    while True:
        out.append(seq & 0xFF)
        seq >>= 8
        if not seq:
            break
    return bytes(reversed(out))


def piv_value(b):
    if not isinstance(b, bytes) or not 1 <= len(b) <= 5 or (len(b) > 1 and b[0] == 0):
        raise AuthError("bad Partial IV")
    v = 0
    for x in b:
        v = (v << 8) | x
    return v


def protected_header(seq):
    return cbor.dumps({1: _ALG, 6: piv_bytes(seq)})


def mac_input(protected, payload, aad):
    # MAC_structure = ["MAC0", protected, external_aad, payload]
    return cbor.dumps(["MAC0", protected, aad, payload])


def encode(key, kid, seq, payload, aad=AAD_UP):
    """A tagged COSE_Mac0 over payload (bytes), sequence number seq, from device kid."""
    if isinstance(kid, str):
        kid = kid.encode()
    prot = protected_header(seq)
    tag = hmac_sha256(key, mac_input(prot, payload, aad))[:_TAG_LEN]
    out = bytearray(b"\xd1\x84")  # tag 17, array of 4
    cbor.encode_into(out, prot)
    cbor.encode_into(out, {4: kid})
    cbor.encode_into(out, payload)
    cbor.encode_into(out, tag)
    return bytes(out)


def parse(data):
    """Split a COSE_Mac0 into (kid, seq, protected, payload, tag) without verifying.

    Only the form this protocol uses is accepted: tag 17, alg 4 and nothing else in the
    protected header but the Partial IV, a kid, an 8-byte tag. Anything else, an
    algorithm downgrade included, raises AuthError (or DecodeError for bad CBOR).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("expected bytes, got %s" % type(data).__name__)
    # the deterministic head of tag 17 is the one byte 0xD1; reading it here keeps the
    # codec's tag support (protocol/cbor_ext.py) out of the device's RAM
    if not len(data) or data[0] != 0xD0 | _TAG_MAC0:
        raise AuthError("not a tagged COSE_Mac0")
    arr = cbor.loads(memoryview(data)[1:])
    if not isinstance(arr, list) or len(arr) != 4:
        raise AuthError("COSE_Mac0 must be an array of 4")
    prot, unprot, payload, tag = arr
    if not isinstance(prot, bytes) or not isinstance(unprot, dict) or not isinstance(payload, bytes) \
            or not isinstance(tag, bytes):
        raise AuthError("COSE_Mac0 fields have wrong types")
    try:
        hdr = cbor.loads(prot)
    except DecodeError:
        raise AuthError("protected header is not CBOR")
    if not isinstance(hdr, dict) or hdr.get(1) != _ALG or type(hdr.get(1)) is not int \
            or len(hdr) != 2 or 6 not in hdr:
        raise AuthError("protected header must be {1: 4, 6: piv} (alg downgrade or extra fields)")
    if len(tag) != _TAG_LEN:
        raise AuthError("MAC tag must be %d bytes" % _TAG_LEN)
    kid = unprot.get(4)
    if not isinstance(kid, bytes) or not 1 <= len(kid) <= 16:
        raise AuthError("missing or bad kid")
    for k in unprot:
        if k != 4:
            raise AuthError("unexpected unprotected header %r" % (k,))
    return kid, piv_value(hdr[6]), prot, payload, tag


def verify(data, key_for, aad=AAD_UP):
    """Verify a COSE_Mac0; key_for(kid) returns the key or None (a device passes its own
    key itself: the MAC is the proof, the kid only names the sender). Returns
    (kid, seq, payload)."""
    kid, seq, prot, payload, tag = parse(data)
    key = key_for if isinstance(key_for, (bytes, bytearray)) else key_for(kid)
    if key is None:
        raise AuthError("unknown device")
    # constant-time comparison (no early exit on the first differing byte); equal() is
    # inlined here to save a function object on the device
    mac = hmac_sha256(key, mac_input(prot, payload, aad))
    r = 0
    for i in range(_TAG_LEN):
        r |= mac[i] ^ tag[i]
    if r:
        raise AuthError("bad MAC")
    return kid, seq, payload
