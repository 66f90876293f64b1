"""The device registry: which device ids exist and their MAC keys.

A JSON file `{"devices": {"ID": {"key": "HEX64", ...}}}` written by `consumables deploy`.
The bridge reloads it when the file changes (mtime/size/inode), so a deploy adds a device
without a bridge restart. Keys are secrets: they are never logged, printed or put in a
repr; `masked()` gives a view safe for output.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

MASK = "****"


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
    """Atomic write (tmp + fsync + rename), mode 0600 from creation: the file holds keys."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp%d" % os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def add_device(path, device: str, key_hex: str, **meta) -> None:
    """Add or replace one device (consumables deploy, tests and tools)."""
    bytes.fromhex(key_hex)  # validate before writing
    try:
        doc = load(path)
    except RegistryError:
        if Path(path).exists():
            raise
        doc = {"devices": {}}
    doc["devices"][device] = dict(meta, key=key_hex)
    save(path, doc)


def masked(doc: dict) -> dict:
    """A copy of the document with every key replaced by ****, for printing."""
    return {"devices": {d: {k: (MASK if k == "key" else v) for k, v in e.items()}
                        for d, e in doc.get("devices", {}).items() if isinstance(e, dict)}}


def _parse_keys(doc: dict) -> tuple[dict, list]:
    keys, bad = {}, []
    for dev, entry in doc.get("devices", {}).items():
        try:
            key = bytes.fromhex(entry["key"])
            if not key:
                raise ValueError
            keys[dev] = key
        except (KeyError, TypeError, ValueError):
            bad.append(dev)
    return keys, bad


class Registry:
    """Keys by device id, reloaded when the file changes. Thread-safe.

    key_for(kid) has the signature codec.decode_chunk expects: bytes kid -> key or None.
    """

    def __init__(self, path, log=None):
        self.path = Path(path)
        self.log = log or (lambda event, **kw: None)
        self._lock = threading.Lock()
        self._sig = None
        self._keys: dict[str, bytes] = {}
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
        keys, bad = _parse_keys(doc)
        for dev in bad:
            self.log("registry_bad_entry", device=dev)
        self._keys = keys
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
        """refresh=False: the keys as last loaded (the bridge refreshes once per batch)."""
        if refresh:
            self.refresh()
        if isinstance(kid, bytes):
            kid = kid.decode("ascii", "replace")
        return self._keys.get(kid)

    def devices(self) -> list[str]:
        self.refresh()
        return sorted(self._keys)
