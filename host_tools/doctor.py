"""consumables doctor [--config FILE] [bridge options]: check a bridge setup, say what to fix.

Takes the bridge's own options (and config file), so it checks exactly what the bridge
would use, one line per check ("ok", "warn" or "FAIL ... -> what to do"):
  registry   readable, valid, keys present, private (mode 0600: it holds device keys)
  database   its directory writable, the file a bridge database, not locked by another writer
  serial     each port present, ours to open, not held by another program (a running bridge)
  listen     each UDP address free to bind
  broker     each MQTT uplink's broker and the Home Assistant broker reachable (TCP)
  http       each webhook host reachable (TCP)
  metrics    the metrics address free to bind
Exit 0 when nothing failed, 1 otherwise (2: bad options).
"""
from __future__ import annotations

import os
import socket
import sqlite3
import stat
import sys
import urllib.parse
from pathlib import Path

from host_tools import bridgeconf
from host_tools.bridge import SystemExit2, bridge_parser
from host_tools.registry import Registry, RegistryError, registry_path


class Report:
    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.failed = 0

    def ok(self, what, text):
        print("ok    %-9s %s" % (what, text), file=self.out)

    def warn(self, what, text, fix):
        print("warn  %-9s %s -> %s" % (what, text, fix), file=self.out)

    def fail(self, what, text, fix):
        self.failed += 1
        print("FAIL  %-9s %s -> %s" % (what, text, fix), file=self.out)


def check_registry(r: Report, path):
    p = Path(path)
    if not p.exists():
        return r.fail("registry", "%s does not exist" % p, "deploy a device (consumables deploy) or pass --registry")
    try:
        reg = Registry(p)
    except (RegistryError, OSError) as e:
        return r.fail("registry", str(e), "fix or restore the file (it is JSON: {\"devices\": {...}})")
    mode = stat.S_IMODE(p.stat().st_mode)
    n = len(reg.devices())
    if mode & 0o077:
        return r.fail("registry", "%s is readable by others (mode %04o) and holds device keys" % (p, mode),
                      "chmod 600 %s" % p)
    if n == 0:
        return r.warn("registry", "%s has no devices" % p, "deploy one: consumables deploy ...")
    r.ok("registry", "%s: %d device(s), mode %04o" % (p, n, mode))


def check_db(r: Report, path):
    p = Path(path).resolve()
    if not p.exists():
        d = p.parent
        if d.is_dir() and os.access(d, os.W_OK):
            return r.ok("database", "%s will be created (directory writable)" % p)
        return r.fail("database", "cannot create %s: %s is not a writable directory" % (p, d),
                      "create it or pass --db PATH somewhere writable")
    if not os.access(p, os.W_OK) or not os.access(p.parent, os.W_OK):
        return r.fail("database", "%s (or its directory, for the WAL) is not writable" % p,
                      "chown it to the user the bridge runs as")
    try:
        db = sqlite3.connect(str(p), timeout=0.5, isolation_level=None)
        try:
            tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "messages" not in tables:
                return r.fail("database", "%s is not a bridge database" % p, "pass the right --db")
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            n = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            return r.warn("database", "%s is in use (%s)" % (p, e), "a bridge is running on it; stop it first "
                          "to run a second one elsewhere, or leave it")
        return r.fail("database", "%s: %s" % (p, e), "check the file and its permissions")
    except sqlite3.DatabaseError as e:
        return r.fail("database", "%s: %s" % (p, e), "it is not an SQLite database: pass the right --db")
    r.ok("database", "%s: writable, %d message(s)" % (p, n))


def check_serial(r: Report, port, baud):
    if not os.path.exists(port):
        return r.fail("serial", "%s does not exist" % port, "plug the board in (ls /dev/ttyUSB* /dev/ttyACM*)")
    if not os.access(port, os.R_OK | os.W_OK):
        return r.fail("serial", "%s: permission denied" % port,
                      "sudo usermod -aG dialout %s, then log in again" % os.environ.get("USER", "$USER"))
    import serial
    s = serial.Serial()
    s.port, s.baudrate, s.timeout = port, baud, 0
    s.dtr = s.rts = False   # as the bridge: opening must not reset the board
    try:
        s.exclusive = True
    except (AttributeError, ValueError):
        pass
    try:
        s.open()
        s.close()
    except (serial.SerialException, OSError) as e:
        if "busy" in str(e).lower() or "lock" in str(e).lower() or getattr(e, "errno", None) == 16:
            return r.fail("serial", "%s is in use by another program" % port,
                          "stop it (a bridge or mpremote already running? fuser %s)" % port)
        return r.fail("serial", "%s: %s" % (port, e), "check the cable and the port name")
    r.ok("serial", "%s: present, free (%d baud)" % (port, baud))


def check_bind(r: Report, what, host, port, kind):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, kind)
    try:
        s.bind((host, port))
    except OSError as e:
        return r.fail(what, "cannot bind %s:%d: %s" % (host, port, e.strerror),
                      "another program (a running bridge?) has it, or pick another address")
    finally:
        s.close()
    r.ok(what, "%s:%d is free" % (host, port))


def check_tcp(r: Report, what, host, port, name):
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as e:
        return r.fail(what, "%s (%s:%d): %s" % (name, host, port, e.strerror or e),
                      "start it or fix the address" + (" (is mosquitto running?)" if what == "broker" else ""))
    r.ok(what, "%s reachable at %s:%d" % (name, host, port))


def main_doctor(argv=None) -> int:
    prog = "consumables doctor"
    p = bridge_parser(prog, "Check a bridge setup (the bridge's own options or --config) and say what to fix.")
    try:
        try:
            a = bridgeconf.parse_with_config(p, argv)
        except bridgeconf.ConfigError as e:
            raise SystemExit2(str(e)) from None
    except SystemExit2 as e:
        print("%s: error: %s" % (prog, e), file=sys.stderr)
        return 2
    r = Report()
    if a.config:
        r.ok("config", "%s read" % a.config)
    check_registry(r, registry_path(a.registry))
    check_db(r, a.db)
    for port in a.serial:
        check_serial(r, port, a.baud)
    for url in a.listen:
        u = urllib.parse.urlsplit(url)
        if u.scheme != "udp" or u.port is None:
            r.fail("listen", "%r is not udp://HOST:PORT" % url, "fix --listen")
        else:
            check_bind(r, "listen", u.hostname or "0.0.0.0", u.port, socket.SOCK_DGRAM)
    if not a.uplink:
        r.fail("uplink", "no uplink", "give at least one --uplink (jsonl:PATH, mqtt://..., https://...)")
    for url in a.uplink:
        u = urllib.parse.urlsplit(url)
        if u.scheme == "mqtt":
            check_tcp(r, "broker", u.hostname or "", u.port or 1883, "MQTT uplink broker")
        elif u.scheme in ("http", "https"):
            check_tcp(r, "http", u.hostname or "", u.port or (443 if u.scheme == "https" else 80), "webhook")
        elif u.scheme in ("jsonl", "sqlite"):
            d = Path(url.split(":", 1)[1]).resolve().parent
            if os.access(d, os.W_OK):
                r.ok("uplink", "%s: directory writable" % url)
            else:
                r.fail("uplink", "%s: %s is not writable" % (url, d), "create it or point the uplink elsewhere")
        else:
            r.fail("uplink", "unknown uplink %r" % url, "jsonl:PATH | sqlite:PATH | http(s)://URL | mqtt://HOST/P")
    if a.ha:
        u = urllib.parse.urlsplit(a.ha)
        check_tcp(r, "broker", u.hostname or "", u.port or 1883, "Home Assistant broker")
    if a.metrics:
        try:
            host, port = bridgeconf.parse_hostport(a.metrics)
            check_bind(r, "metrics", host, port, socket.SOCK_STREAM)
        except bridgeconf.ConfigError as e:
            r.fail("metrics", str(e), "fix --metrics")
    print("%s" % ("all checks passed" if not r.failed else "%d check(s) failed" % r.failed))
    return 1 if r.failed else 0
