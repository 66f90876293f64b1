"""consumables send DEVICE config key=value ... | consent LEVEL | order-status KEY STATUS | time [UNIX]
                      | weather DATE TEMPS [NORMALS]

Queues a downlink command in the bridge's SQLite store (the `downlink` table). The running
bridge picks it up, signs it with the device's key and its persisted downlink counter,
and sends it on the link the device was last seen on: at once if the device was seen
recently, otherwise right after the ack of its next uplink (when a sleeping device is
awake and listening). Going through the store, not a socket, means the command survives
a bridge restart and needs no bridge to be running when it is queued.

`time` without UNIX is filled in at delivery, so a device seen hours later gets the time
of delivery, not of queueing.

`weather DATE TEMPS [NORMALS]` (heating fuels, protocol/SPEC.md "Weather"): DATE the day of
the first temperature (YYYY-MM-DD, UTC), TEMPS up to 16 daily mean outdoor temperatures in
°C from that day on (observed, then forecast), NORMALS up to 8 weekly mean normals for the
weeks after them, both comma-separated. The wire carries half degrees from -60 °C, so a
temperature is rounded to 0.5 °C and must lie in -60..67.5 °C.

Consent may be lowered remotely, never raised on the supplier's say-so: `consent LEVEL`
above the device's known level (its last hello / consent_changed, lowered by consent
commands queued since) is refused unless `--customer-confirmed` says the customer asked
for it; that raise is printed and recorded in the store's audit table. An unknown level
(device never seen) counts as a raise, except level 0. See docs/THREAT_MODEL.md T15.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

from host_tools.registry import RegistryError, load, registry_path, valid_device_id
from host_tools.store import Store, StoreError, consent_is_lowering
from protocol import messages, schema
from protocol.errors import DecodeError

COMMANDS = ("config", "consent", "order-status", "time", "weather")


class UsageError(Exception):
    pass


def _int(s: str, what: str) -> int:
    try:
        return int(s, 0)
    except ValueError:
        raise UsageError("%s must be an integer, not %r" % (what, s)) from None


def _temps(s: str, what: str, most: int) -> list[int]:
    """"-3.5,0,2" -> the wire's half degrees from -60 C: [113, 120, 124]."""
    out = []
    for t in s.split(","):
        try:
            c = float(t)
        except ValueError:
            raise UsageError("%s are degrees C separated by commas, not %r" % (what, t)) from None
        if not -60 <= c <= 67.5:
            raise UsageError("%s: %s C is outside -60..67.5 C" % (what, t))
        out.append(int(round((c + 60) * 2)))
    if len(out) > most:
        raise UsageError("%s: at most %d values, not %d" % (what, most, len(out)))
    return out


def _day(s: str) -> int:
    import datetime
    try:
        d = datetime.date.fromisoformat(s)
    except ValueError:
        raise UsageError("DATE is YYYY-MM-DD, not %r" % s) from None
    return (d - datetime.date(1970, 1, 1)).days


def parse_command(cmd: str, args: list[str]) -> tuple[str, dict]:
    """('config', ['report_s=60']) -> ('config', {'report_s': 60}), validated against the schema."""
    if cmd == "config":
        if not args:
            keys = ", ".join(f[0] for f in schema.SCHEMA[messages.CONFIG][1].values())
            raise UsageError("config needs key=value pairs (keys: %s)" % keys)
        fields = {}
        for a in args:
            k, sep, v = a.partition("=")
            if not sep or not k:
                raise UsageError("config arguments are key=value, not %r" % a)
            fields[k] = _int(v, k)
        name = "config"
    elif cmd == "consent":
        if len(args) != 1:
            raise UsageError("consent takes one LEVEL (0-4 or %s)" % "|".join(schema.CONSENT_NAMES))
        lvl = args[0]
        v = schema.CONSENT_NAMES.index(lvl) if lvl in schema.CONSENT_NAMES else _int(lvl, "LEVEL")
        name, fields = "consent", {"level": v}
    elif cmd == "order-status":
        if len(args) != 2:
            raise UsageError("order-status takes KEY STATUS (%s)" % "|".join(schema.STATUS_NAMES.values()))
        by_name = {v: k for k, v in schema.STATUS_NAMES.items()}
        st = by_name[args[1]] if args[1] in by_name else _int(args[1], "STATUS")
        name, fields = "order_status", {"key": args[0], "status": st}
    elif cmd == "time":
        if len(args) > 1:
            raise UsageError("time takes at most one UNIX timestamp")
        name, fields = "time", ({"unix": _int(args[0], "UNIX")} if args else {})
    elif cmd == "weather":
        if len(args) not in (2, 3):
            raise UsageError("weather takes DATE TEMPS [NORMALS], e.g. 2026-12-01 -3,-1.5,0 -4,-5")
        name, fields = "weather", {"day": _day(args[0]), "daily": _temps(args[1], "TEMPS", 16)}
        if len(args) == 3:
            fields["normals"] = _temps(args[2], "NORMALS", 8)
    else:
        raise UsageError("unknown command %r (use %s)" % (cmd, ", ".join(COMMANDS)))
    check = dict(fields)
    if name == "time" and "unix" not in check:
        check["unix"] = 0  # filled in at delivery
    try:
        schema.from_named(name, check)
    except DecodeError as e:
        raise UsageError(str(e)) from None
    return name, fields


def _user() -> str:
    try:
        import getpass
        return getpass.getuser()
    except Exception:  # no passwd entry in a container: not worth failing the command
        return str(os.getuid())


_NEG = "\x00"
_NEG_LIST = re.compile(r"-[0-9.][0-9.,-]*$")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def main_send(argv=None) -> int:
    prog = "consumables send"
    p = _Parser(prog=prog, description="Queue a downlink command for a device (delivered by the bridge).")
    p.add_argument("device")
    p.add_argument("command", metavar="{%s}" % ",".join(COMMANDS))
    p.add_argument("args", nargs="*")
    p.add_argument("--db", default=os.environ.get("CONSUMABLES_DB", "bridge.sqlite"),
                   help="bridge database (default ./bridge.sqlite or $CONSUMABLES_DB)")
    p.add_argument("--registry", help="device registry, checked when it exists")
    p.add_argument("--customer-confirmed", action="store_true",
                   help="the customer asked for this consent raise (needed to raise consent; recorded "
                        "with the user and time in the audit table)")
    # "-3,-1.5,0" (weather temperatures) is an argument, not an option: argparse only
    # recognises a single negative number as one, so hide such lists from it while it parses
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [_NEG + x if _NEG_LIST.match(x) else x for x in argv]
    try:
        a = p.parse_intermixed_args(argv)
        a.args = [x[len(_NEG):] if x.startswith(_NEG) else x for x in a.args]
        if not valid_device_id(a.device):
            raise UsageError("bad device id %s: 1 to 16 characters from a-z, 0-9 and '-'" % ascii(a.device)[:40])
        name, fields = parse_command(a.command, a.args)
        rpath = registry_path(a.registry)
        if a.registry or rpath.exists():
            if a.device not in load(rpath)["devices"]:
                raise UsageError("device %r is not in the registry %s" % (a.device, rpath))
        store = Store(a.db, create=False)
        try:
            audit = None
            if name == "consent":
                floor = store.consent_floor(a.device)
                if not consent_is_lowering(fields["level"], floor):
                    now_s = "unknown (never reported)" if floor is None else "%d (%s)" % (
                        floor, schema.CONSENT_NAMES[floor] if 0 <= floor < len(schema.CONSENT_NAMES) else "?")
                    if not a.customer_confirmed:
                        raise UsageError("consent %d would raise %s's consent (now %s); only the customer may "
                                         "raise it: add --customer-confirmed if they asked for it"
                                         % (fields["level"], a.device, now_s))
                    audit = {"what": "consent_raise", "from": floor, "to": fields["level"],
                             "customer_confirmed": True, "user": _user()}
                    print("%s: consent raise %s -> %d for %s on the customer's confirmation (by %s), "
                          "recorded in the audit table" % (prog, now_s, fields["level"], a.device, audit["user"]),
                          file=sys.stderr)
            did = store.queue_downlink(a.device, name, fields, audit=audit)
        finally:
            store.close()
    except (UsageError, RegistryError, StoreError) as e:
        print("%s: error: %s" % (prog, e), file=sys.stderr)
        return 2
    print("queued %s %s for %s (id %d); the bridge delivers it when %s is seen"
          % (name, fields or "", a.device, did, a.device))
    return 0


if __name__ == "__main__":
    sys.exit(main_send())
