"""`consumables` command line: one subcommand per tool, each in its own module.

Each tool module exposes `main_<name>(argv) -> int`; this file only dispatches, so a
missing optional dependency of one tool never breaks the others.
"""
import importlib
import sys

COMMANDS = {
    "demo": ("host_tools.demo", "main_demo", "run the whole system on a virtual board (the README's first command)"),
    "board": ("host_tools.board", "main_board", "run a virtual board behind a pseudo-terminal"),
    "deploy": ("host_tools.deploy", "main_deploy", "compile and copy the firmware to a board with mpremote"),
    "bridge": ("host_tools.bridge", "main_bridge", "receive, verify, store and forward device messages"),
    "send": ("host_tools.send", "main_send", "queue a downlink command (config, consent, order-status, time)"),
    "monitor": ("host_tools.monitor", "main_monitor", "live table of devices from the bridge's store"),
    "plot": ("host_tools.plot", "main_plot", "plot a device's level history and forecast to a PNG"),
    "decode": ("host_tools.decode", "main_decode", "decode frames (hex) to JSON, verifying with the registry"),
    "keys": ("host_tools.keys", "main_keys", "rotate a device's key over the air (keys rotate DEVICE)"),
    "doctor": ("host_tools.doctor", "main_doctor", "check a bridge setup (registry, database, ports, brokers)"),
    "service": ("host_tools.service", "main_service", "install the bridge as a systemd service (--user|--system)"),
}


def usage():
    lines = ["usage: consumables COMMAND [options]", "", "commands:"]
    for name, (_, _, text) in COMMANDS.items():
        lines.append("  %-8s %s" % (name, text))
    lines.append("")
    lines.append("Run `consumables COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    cmd = argv[0]
    if cmd not in COMMANDS:
        print("consumables: unknown command %r\n\n%s" % (cmd, usage()), file=sys.stderr)
        return 2
    modname, fn, _ = COMMANDS[cmd]
    try:
        mod = importlib.import_module(modname)
        entry = getattr(mod, fn)
    except (ImportError, AttributeError) as e:
        print("consumables %s: not available in this build (%s)" % (cmd, e), file=sys.stderr)
        return 2
    try:
        return entry(argv[1:]) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
