"""The device registry: which device ids exist and their MAC keys.

A JSON file `{"devices": {"ID": {"key": "HEX64", ...}}}` written by `consumables deploy`.
The bridge reloads it when the file changes (mtime/size/inode), so a deploy adds a device
without a bridge restart. Keys are secrets: they are never logged, printed or put in a
repr; `masked()` gives a view safe for output.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from pathlib import Path

MASK = "****"
# Device ids as the registry, the bridge, MQTT topics, HTTP headers and the monitor accept
# them: protocol/SPEC.md's kid alphabet (deploy makes 1-8 of these; up to 16 are accepted).
# Nothing that could end a header line, split an MQTT topic (+ # /) or style a terminal.
DEVICE_ID_RE = re.compile(r"[a-z0-9-]{1,16}")


def valid_device_id(dev) -> bool:
    return isinstance(dev, str) and DEVICE_ID_RE.fullmatch(dev) is not None


class RegistryError(Exception):
    """The registry file is missing or unusable (one clear line for the CLI)."""


def registry_path(arg=None) -> Path:
    """--registry, else $CONSUMABLES_REGISTRY, else ~/.config/smart-consumables/registry.json."""
    if arg:
        return Path(arg)
    env = os.environ.get("CONSUMABLES_REGISTRY")
    if env:
        return Path(env)
    return Path.home() / ".config" / "smart-consumables" / "registry.json"


def load(path) -> dict:
    """The parsed registry document; RegistryError if missing or malformed."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise RegistryError("registry %s not found (deploy a device or pass --registry)" % path) from None
    except (OSError, ValueError) as e:
        raise RegistryError("registry %s unreadable: %s" % (path, type(e).__name__)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("devices", {}), dict):
        raise RegistryError("registry %s must be {\"devices\": {...}}" % path)
    doc.setdefault("devices", {})
    return doc


def save(path, doc: dict) -> None:
    """Atomic write of the registry (write_private): mode 0600 from creation, it holds keys."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, json.dumps(doc, indent=1, sort_keys=True), fsync=True)


def write_private(path, text: str, fsync: bool = False) -> None:
    """Replace a file atomically with mode 0600 from creation. The temp file is made in the
    same directory with O_CREAT | O_EXCL | O_NOFOLLOW under a random name, so a file or
    symlink planted at a guessable name (the registry's was NAME.tmpPID) can neither
    receive the content nor be truncated; then (fsync and) rename over the file."""
    import secrets
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(16):
        tmp = path.with_name(".%s.%s.tmp" % (path.name, secrets.token_hex(8)))
        try:
            fd = os.open(tmp, flags, 0o600)
            break
        except FileExistsError:
            continue
    else:
        raise OSError("cannot create a temporary file next to %s" % path)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def create_private(path) -> None:
    """Create path empty with mode 0600 unless it exists (a database, a log): a file the
    bridge creates is never readable by other users, not even for an instant."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
    except FileExistsError:
        pass


def add_device(path, device: str, key_hex: str, **meta) -> None:
    """Add or replace one device (consumables deploy, tests and tools), recording its key's
    fingerprint (key_fp: the key generation the bridge's replay window belongs to)."""
    if not valid_device_id(device):
        raise RegistryError("bad device id %s: 1 to 16 characters from a-z, 0-9 and '-'" % ascii(device)[:40])
    bytes.fromhex(key_hex)  # validate before writing
    try:
        doc = load(path)
    except RegistryError:
        if Path(path).exists():
            raise
        doc = {"devices": {}}
    doc["devices"][device] = dict(meta, key=key_hex, key_fp=fingerprint(bytes.fromhex(key_hex)))
    save(path, doc)


def fingerprint(key: bytes) -> str:
    """A key generation's name (16 hex characters of SHA-256 over a label and the key): it
    tells keys apart in the registry, the bridge's replay windows and logs, and gives
    nothing of the key away."""
    return hashlib.sha256(b"smart-consumables key fingerprint\0" + bytes(key)).hexdigest()[:16]


REKEY_LABEL = b"rekey"
DEFAULT_GRACE_S = 7 * 86400   # a sleeping device reports at least daily; a week to hear it


def rekeyed(key: bytes, nonce: str) -> bytes:
    """The key a device derives from a rekey downlink (firmware/agent.py on_rekey)."""
    import hmac
    return hmac.new(key, REKEY_LABEL + nonce.encode(), hashlib.sha256).digest()


def rotate(path, device: str, grace_s: float = DEFAULT_GRACE_S, now: float | None = None) -> dict:
    """Start a key rotation for one device, in one atomic registry write: the new key is
    rekeyed(old, nonce) with a fresh random nonce; the old key stays valid until
    now + grace_s ("old_key", "old_until"), and the bridge sends the device the nonce in a
    rekey downlink (under the old key) after each frame it stores under the old key.
    Returns {"old_fp", "new_fp", "until"}. A rotation still in its grace period is refused:
    the device may hold either key, and a third would strand it."""
    import secrets
    now = time.time() if now is None else now
    doc = load(path)
    entry = doc["devices"].get(device)
    if not isinstance(entry, dict) or "key" not in entry:
        raise RegistryError("device %s is not in the registry %s" % (ascii(device)[:40], path))
    if entry.get("old_key") and float(entry.get("old_until", 0)) > now:
        raise RegistryError("a rotation of %s is still in its grace period (until %s)"
                            % (device, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(entry["old_until"])))))
    try:
        old = bytes.fromhex(entry["key"])
    except (TypeError, ValueError):
        raise RegistryError("registry entry of %s has no valid key" % device) from None
    nonce = secrets.token_hex(16)
    new = rekeyed(old, nonce)
    until = now + grace_s
    entry.update(key=new.hex(), key_fp=fingerprint(new), old_key=old.hex(), old_fp=fingerprint(old),
                 old_until=until, rekey_nonce=nonce)
    save(path, doc)
    return {"old_fp": fingerprint(old), "new_fp": fingerprint(new), "until": until}


def masked(doc: dict) -> dict:
    """A copy of the document with every key replaced by ****, for printing."""
    return {"devices": {d: {k: (MASK if k in ("key", "old_key") else v) for k, v in e.items()}
                        for d, e in doc.get("devices", {}).items() if isinstance(e, dict)}}


def _parse_keys(doc: dict) -> tuple[dict, list, dict]:
    """{device: [(key, fingerprint, valid until or None)]}, current key first, then the
    previous one during a rotation's grace period ("old_key", "old_until": unix time,
    only when the current key is rekeyed(old_key, rekey_nonce)); and {device: nonce}."""
    keys, bad, rekeys = {}, [], {}
    for dev, entry in doc.get("devices", {}).items():
        if not valid_device_id(dev):
            bad.append(ascii(dev)[:40])   # escaped: the id itself may hold control characters
            continue
        try:
            key = bytes.fromhex(entry["key"])
            if not key:
                raise ValueError
            keys[dev] = [(key, fingerprint(key), None)]
            if entry.get("old_key"):
                old = bytes.fromhex(entry["old_key"])
                until = float(entry.get("old_until", 0))
                nonce = entry.get("rekey_nonce")
                if old and old != key and isinstance(nonce, str) and rekeyed(old, nonce) == key:
                    keys[dev].append((old, fingerprint(old), until))
                    rekeys[dev] = nonce
        except (KeyError, TypeError, ValueError):
            bad.append(dev)
    return keys, bad, rekeys


class Registry:
    """Keys by device id, reloaded when the file changes. Thread-safe.

    key_for(kid) has the signature codec.decode_chunk expects: bytes kid -> key or None.
    """

    def __init__(self, path, log=None):
        self.path = Path(path)
        self.log = log or (lambda event, **kw: None)
        self._lock = threading.Lock()
        self._sig = None
        self._keys: dict[str, list] = {}
        self._rekeys: dict[str, str] = {}
        self.reloads = 0
        doc = load(self.path)  # a missing registry at startup is a hard error
        self._install(doc, self._stat())

    def __repr__(self):  # never show keys
        return "Registry(%s, %d devices)" % (self.path, len(self._keys))

    def _stat(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _install(self, doc, sig):
        keys, bad, rekeys = _parse_keys(doc)
        for dev in bad:
            self.log("registry_bad_entry", device=dev)
        self._keys = keys
        self._rekeys = rekeys
        self._sig = sig

    def refresh(self) -> None:
        """Reload if the file changed since the last load; keep the old keys if it broke."""
        sig = self._stat()
        if sig == self._sig:
            return
        with self._lock:
            if sig == self._sig:
                return
            try:
                doc = load(self.path)
            except RegistryError as e:
                # a half-edited or removed file must not drop every device
                self.log("registry_error", error=str(e))
                self._sig = sig
                return
            self._install(doc, sig)
            self.reloads += 1
            self.log("registry_reloaded", devices=len(self._keys))

    def key_for(self, kid, refresh: bool = True):
        """The device's current key (what the bridge signs new downlinks with), or None."""
        keys = self.keys_for(kid, refresh=refresh)
        return keys[0][0] if keys else None

    def keys_for(self, kid, now: float | None = None, refresh: bool = True) -> list:
        """[(key, fingerprint)] a frame from kid may verify under: the current key, and the
        previous one until its rotation grace period ends (then it is refused).
        refresh=False: the keys as last loaded (the bridge refreshes once per batch)."""
        if refresh:
            self.refresh()
        if isinstance(kid, bytes):
            kid = kid.decode("ascii", "replace")
        now = time.time() if now is None else now
        return [(k, fp) for k, fp, until in self._keys.get(kid, ()) if until is None or now < until]

    def rekey_nonce(self, device: str, key: bytes):
        """The nonce to send a device whose frame verified under `key`, when that is the old
        key of a rotation still in its grace period; else None."""
        keys = self.keys_for(device)
        if len(keys) > 1 and key == keys[1][0]:
            return self._rekeys.get(device)
        return None

    def devices(self) -> list[str]:
        self.refresh()
        return sorted(self._keys)
