"""Atomic persistent records on the board's flash (LittleFS / FAT / the unix port's VfsPosix).

write_atomic(path, data): write `path.tmp`, flush, os.sync() when the port has it, then
os.rename over `path`. A power cut at any step leaves either the old `path` or the new one:
the rename is the commit point (atomic on LittleFS and POSIX). FAT's rename cannot replace
an existing file, so MicroPython's VfsFat unlinks the target first: a cut between the two
leaves only `path.tmp`, complete. Hence load(): keep `path` when it parses, else
recover from `path.tmp` if (and only if) *that* parses, and promote it.

A write that fails (OSError: ENOSPC when the flash is full) removes its tmp and raises;
the old `path` is untouched.

All I/O goes through the module-level functions write_file / rename / remove, so tests can
monkeypatch them to inject a power cut at any single step.

Heap: a board loads this as .mpy into a 64 KB heap, where each function is a raw-code object
(~35 bytes plus bytecode) and each name a qstr for good: helpers used once are folded into
their caller.
"""
import json
import os
from array import array
from binascii import b2a_base64

TMP = ".tmp"


def write_file(path, data):
    """data: bytes, or a callable writer(f) given a text file (json.dump streams into it,
    so a large record never needs one big contiguous string in a fragmented heap)."""
    if callable(data):
        with open(path, "w") as f:
            data(f)
            f.flush()
    else:
        with open(path, "wb") as f:
            f.write(data)
            f.flush()      # the data reaches the VFS before the rename commits it
    s = getattr(os, "sync", None)   # not on every port
    if s is not None:
        s()


def rename(a, b):
    if a[:1] == "/" and b[:1] == "/" and os.getcwd() == "/":
        # VfsPosix (the virtual board's flash, mounted at /) builds both absolute paths in
        # one shared buffer: rename("/x.tmp", "/x") becomes rename("/x", "/x"), a silent
        # no-op when /x exists (ENOENT when it does not). Relative to the root, the same
        # rename is right on every port.
        a, b = a[1:], b[1:]
    try:
        os.rename(a, b)
    except OSError:
        # FAT (and CPython on Windows) will not rename over an existing file
        remove(b)
        os.rename(a, b)


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def makedirs(path):
    # MicroPython has no os.makedirs; boards need at most two levels
    p = "/" if path[:1] == "/" else ""
    for part in path.split("/"):
        if part:
            p += part
            if not exists(p):
                try:
                    os.mkdir(p)
                except OSError:
                    pass
            p += "/"


def write_atomic(path, data):
    tmp = path + TMP
    try:
        write_file(tmp, data)
    except OSError:     # flash full (ENOSPC): do not leave a torn tmp taking the space
        remove(tmp)
        raise
    rename(tmp, path)


def read_bytes(path, n=-1):
    """The file's bytes (n: its size when known: read() without it starts with a 256-byte
    buffer, a run of free blocks a fragmented heap may lack), or None if unreadable."""
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return None


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception:  # missing, truncated or garbled: any error means "no good record"
        return None


def dump(v, f):
    """json.dump(v, f), streamed: lists and dicts item by item, and an array, bytes or
    bytearray as a base64 string 48 bytes at a time. So a record is never built as one
    long string: after weeks of cycles a fragmented heap may hold 15 KB free and still no
    run of 449 bytes (seen at 84K), and json.dump would want the whole base64 text."""
    w = f.write
    if isinstance(v, (list, tuple)):
        w("[")
        for i, x in enumerate(v):
            if i:
                w(",")
            dump(x, f)
        w("]")
    elif isinstance(v, dict):
        w("{")
        for i, k in enumerate(v):
            if i:
                w(",")
            json.dump(str(k), f)
            w(":")
            dump(v[k], f)
        w("}")
    elif isinstance(v, (bytes, bytearray, array)):
        m = memoryview(v)
        n = 48 // len(bytes(m[:1])) if len(m) else 1    # items in 48 bytes: no padding
        w('"')
        for i in range(0, len(m), n):
            w(b2a_base64(m[i:i + n], newline=False).decode())
        w('"')
    else:
        json.dump(v, f)


def save(path, obj):
    """Store a JSON-able record (arrays and bytes become base64 strings) atomically,
    streamed to flash."""
    write_atomic(path, lambda f: dump(obj, f))


def load(path, default=None):
    """The record at `path`, or at `path.tmp` when `path` is missing or corrupt (a cut
    between FAT's unlink and rename; the tmp is then promoted), else default. A null
    record counts as no record."""
    v = _read(path)
    if v is None:
        tmp = path + TMP
        v = _read(tmp)
        if v is None:
            return default
        try:
            rename(tmp, path)   # promote the complete new record
        except OSError:
            pass
    return v
