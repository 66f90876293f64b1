"""The bridge's configuration file and its optional parts (Home Assistant, metrics).

`consumables bridge --config bridge.toml`: a TOML file (read with tomllib) holds what the
command line would; an option given on the command line wins over the file, and a list
option given there (--serial, --listen, --uplink) replaces the file's list. Keys:

    serial = ["/dev/ttyUSB0"]          # lists: serial, listen, uplink
    baud = 115200
    listen = ["udp://0.0.0.0:5683"]
    uplink = ["mqtt://broker:1883/consumables"]
    registry = "/etc/smart-consumables/registry.json"
    db = "/var/lib/smart-consumables/bridge.sqlite"
    group_commit = 256
    group_wait = 0                     # ms (see --group-wait)
    print_every = 60
    quiet = true                       # no log line per message (see --quiet)
    [home_assistant]                   # same as --ha URL --ha-prefix P --ha-silence S --ha-bridge-id ID
    broker = "mqtt://localhost:1883"
    prefix = "homeassistant"
    silence_s = 7200
    bridge_id = "office"
    [metrics]
    listen = "127.0.0.1:9464"          # same as --metrics HOST:PORT

Unknown keys are an error (a typo must not be silently ignored).
"""
from __future__ import annotations

import os

TOP = {"serial": list, "listen": list, "uplink": list, "baud": int, "registry": str, "db": str,
       "group_commit": int, "group_wait": (int, float), "print_every": (int, float), "quiet": bool}
PER_MESSAGE = ("frame", "duplicate", "forwarded")   # the log events --quiet leaves out
SECTIONS = {"home_assistant": {"broker": ("ha", str), "prefix": ("ha_prefix", str),
                               "silence_s": ("ha_silence", (int, float)), "bridge_id": ("ha_bridge_id", str)},
            "metrics": {"listen": ("metrics", str)}}


class ConfigError(ValueError):
    pass


def add_arguments(p) -> None:
    """The options of the optional parts, on the bridge's parser."""
    p.add_argument("--config", metavar="FILE", help="TOML configuration file (the command line overrides it)")
    p.add_argument("--quiet", action="store_true", default=False,
                   help="no log line per message (frame, duplicate, forwarded); errors and the counters "
                        "still are: for a busy bridge (journald rate-limits a chatty service)")
    p.add_argument("--ha", metavar="mqtt://HOST:PORT", default=None,
                   help="publish Home Assistant MQTT discovery and states to this broker")
    p.add_argument("--ha-prefix", default="homeassistant", help="Home Assistant discovery prefix")
    p.add_argument("--ha-silence", type=float, default=7200.0, metavar="S",
                   help="a device silent for S seconds shows as unavailable (default 7200)")
    p.add_argument("--ha-bridge-id", default=None, help="this bridge's name in Home Assistant (default hostname)")
    p.add_argument("--metrics", metavar="HOST:PORT", default=None, help="serve Prometheus metrics at /metrics")


def load(path) -> dict:
    """The file's settings as argparse destinations; ConfigError with one line if bad."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise ConfigError("--config needs Python 3.11 or newer (tomllib)") from None
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise ConfigError("cannot read config %s: %s" % (path, e.strerror)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("config %s: %s" % (path, e)) from None
    out = {}
    for key, val in doc.items():
        if key in SECTIONS:
            if not isinstance(val, dict):
                raise ConfigError("config %s: [%s] must be a table" % (path, key))
            for k, v in val.items():
                if k not in SECTIONS[key]:
                    raise ConfigError("config %s: unknown key %s.%s" % (path, key, k))
                dest, typ = SECTIONS[key][k]
                out[dest] = _typed(path, "%s.%s" % (key, k), v, typ)
        elif key in TOP:
            out[key] = _typed(path, key, val, TOP[key])
        else:
            raise ConfigError("config %s: unknown key %r" % (path, key))
    for k in ("serial", "listen", "uplink"):
        if k in out and not all(isinstance(x, str) for x in out[k]):
            raise ConfigError("config %s: %s must be a list of strings" % (path, k))
    return out


def _typed(path, name, v, typ):
    if (isinstance(v, bool) and typ is not bool) or not isinstance(v, typ):
        want = typ.__name__ if isinstance(typ, type) else "number"
        raise ConfigError("config %s: %s must be a %s" % (path, name, want if typ is not list else "list"))
    return v


def parse_with_config(p, argv):
    """Parse argv; defaults come from --config FILE when given. Raises ConfigError."""
    pre, _ = p.parse_known_args(argv)
    conf = load(pre.config) if pre.config else {}
    lists = {k: conf.pop(k) for k in ("serial", "listen", "uplink") if k in conf}
    p.set_defaults(**conf)
    a = p.parse_args(argv)
    for k, v in lists.items():
        if not getattr(a, k):
            setattr(a, k, list(v))
    return a


def parse_hostport(text: str):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:   # 0: any free port
        raise ConfigError("--metrics must be HOST:PORT, not %r" % text)
    return host.strip("[]") or "0.0.0.0", int(port)


class Extras:
    """The optional parts attached to a Bridge: start after it, stop before its store closes."""

    def __init__(self):
        self.parts = []

    def start(self):
        for part in self.parts:
            if not getattr(part, "server", None):   # metrics serve from attach() on
                part.start()
        return self

    def stop(self):
        for part in reversed(self.parts):
            try:
                part.stop()
            except Exception:
                pass


def attach(bridge, a, log) -> Extras:
    """Create (not start) what the options ask for and hook it into the bridge's core."""
    ex = Extras()
    if a.ha:
        from host_tools.ha import HomeAssistant
        ha = HomeAssistant(a.ha, bridge.store, bridge.registry, prefix=a.ha_prefix,
                           bridge_id=a.ha_bridge_id or os.environ.get("CONSUMABLES_BRIDGE_ID"),
                           silence_s=a.ha_silence, log=log)
        chain(bridge.core, "on_message", ha.on_message)
        ex.parts.append(ha)
    if a.metrics:
        from host_tools.metrics import Metrics
        host, port = parse_hostport(a.metrics)
        ex.parts.append(Metrics(bridge, host, port, log, silent_s=a.ha_silence).start())  # bind now
    return ex


def chain(obj, hook: str, fn) -> None:
    """obj.hook(*args) then calls fn(*args) as well."""
    prev = getattr(obj, hook)

    def both(*args):
        prev(*args)
        fn(*args)
    setattr(obj, hook, both)
