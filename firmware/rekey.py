"""Key rotation on the device (`consumables keys rotate`; protocol/SPEC.md: the rekey
downlink). Loaded only when a rekey downlink arrives, so its code is not in RAM otherwise."""
from binascii import hexlify

from firmware import store
from protocol import cose


def apply(a, nonce):
    """The new key is HMAC(key, "rekey" + nonce), so only the nonce is on the wire.
    /provision.json (root + it, where main.boot read it) gets it first (atomically), then
    it is used: a cut in between boots with one key or the other."""
    p = a._boot_path[:-15] + "provision.json"   # root + "state/boot.json" -> root + ...
    k = cose.hmac_sha256(a.key, b"rekey" + nonce.encode())
    prov = store.load(p)
    if prov is not None:     # None: an agent built in memory, without files (tests)
        prov["key"] = hexlify(k).decode()
        store.save(p, prov)
    a.key = a.downlink.key = k
