"""consumables service install|uninstall|print --user|--system [--config FILE]: the bridge
as a systemd service.

The unit runs `consumables bridge --config FILE` (the TOML file, host_tools/bridgeconf.py),
restarts it on failure (5 s apart, at most 10 times in 10 minutes), and stops it with
SIGTERM: the bridge stops its links (a batch being committed finishes and is acked),
stops its forwarders, writes its status, closes its database and exits 0 within
TimeoutStopSec. --user installs to ~/.config/systemd/user (no root; `loginctl
enable-linger USER` keeps it running after logout); --system to /etc/systemd/system,
running as the user given by --run-as (default: the invoking user), with the dialout
group for serial ports. --now also runs `systemctl [--user] daemon-reload` and
`enable --now`. systemd.service(5), systemd.exec(5).
"""
from __future__ import annotations

import argparse
import getpass
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from host_tools import bridgeconf

UNIT = "consumables-bridge.service"


class UsageError(Exception):
    pass


def unit_dir(system: bool) -> Path:
    if system:
        return Path("/etc/systemd/system")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def consumables_cmd() -> str:
    """The absolute command that runs this installation's CLI (the venv's entry point)."""
    exe = Path(sys.executable)
    entry = exe.parent / "consumables"
    if entry.exists():
        return shlex.quote(str(entry))
    return "%s -m host_tools.cli" % shlex.quote(str(exe))


def render(config: Path, system: bool, run_as: str | None = None) -> str:
    lines = ["# smart-consumables bridge; written by `consumables service install`",
             "[Unit]",
             "Description=smart-consumables bridge (devices -> verified, stored, acked -> supplier)",
             "Documentation=file://%s" % (Path(__file__).resolve().parents[1] / "README.md"),
             "After=network-online.target",
             "Wants=network-online.target",
             "StartLimitIntervalSec=600",
             "StartLimitBurst=10",
             "",
             "[Service]",
             "Type=simple",
             "ExecStart=%s bridge --config %s" % (consumables_cmd(), shlex.quote(str(config))),
             "WorkingDirectory=%s" % shlex.quote(str(config.parent)),
             "Restart=on-failure",
             "RestartSec=5",
             # SIGTERM to the bridge only; it stops itself cleanly (see above)
             "KillSignal=SIGTERM",
             "KillMode=mixed",
             "TimeoutStopSec=30",
             "Environment=PYTHONUNBUFFERED=1",
             "NoNewPrivileges=yes",
             "PrivateTmp=yes"]
    if system:
        lines += ["User=%s" % (run_as or getpass.getuser()),
                  "SupplementaryGroups=dialout",
                  "ProtectSystem=full"]
    lines += ["", "[Install]", "WantedBy=%s" % ("multi-user.target" if system else "default.target"), ""]
    return "\n".join(lines)


def main_service(argv=None) -> int:
    prog = "consumables service"
    p = argparse.ArgumentParser(prog=prog, description="Install the bridge as a systemd service.")
    p.add_argument("action", choices=("install", "uninstall", "print"))
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--user", action="store_true", help="a user service (~/.config/systemd/user)")
    scope.add_argument("--system", action="store_true", help="a system service (/etc/systemd/system, as root)")
    p.add_argument("--config", help="the bridge's TOML config file (required for install and print)")
    p.add_argument("--run-as", help="--system: the user the bridge runs as (default: you)")
    p.add_argument("--unit-dir", help="write the unit here instead of systemd's directory")
    p.add_argument("--now", action="store_true", help="also daemon-reload and enable --now with systemctl")
    a = p.parse_args(argv)
    try:
        return _run(a)
    except UsageError as e:
        print("%s: error: %s" % (prog, e), file=sys.stderr)
        return 2


def _run(a) -> int:
    path = Path(a.unit_dir or unit_dir(a.system)) / UNIT
    ctl = ["systemctl"] + ([] if a.system else ["--user"])
    if a.action == "uninstall":
        if a.now and shutil.which("systemctl"):
            subprocess.run(ctl + ["disable", "--now", UNIT], check=False)
        if path.exists():
            path.unlink()
            print("removed %s" % path)
        else:
            print("%s was not installed" % path)
        return 0
    if not a.config:
        raise UsageError("--config FILE is required (the bridge's TOML configuration)")
    config = Path(a.config).resolve()
    try:
        conf = bridgeconf.load(config)   # a unit that cannot start is worse than an error now
    except bridgeconf.ConfigError as e:
        raise UsageError(str(e)) from None
    if not conf.get("uplink") or not (conf.get("serial") or conf.get("listen")):
        raise UsageError("config %s needs uplink and serial or listen (the service takes no other options)"
                         % config)
    text = render(config, a.system, a.run_as)
    if a.action == "print":
        sys.stdout.write(text)
        return 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as e:
        raise UsageError("cannot write %s: %s%s" % (path, e.strerror, " (run as root for --system)"
                                                     if a.system else "")) from None
    print("wrote %s" % path)
    if a.now:
        if not shutil.which("systemctl"):
            raise UsageError("systemctl not found: start the bridge another way")
        for cmd in (ctl + ["daemon-reload"], ctl + ["enable", "--now", UNIT]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                raise UsageError("%s: %s" % (" ".join(cmd), (r.stderr or r.stdout).strip().splitlines()[-1:]))
        print("started: %s status %s; logs: journalctl %s-u %s -f" % (" ".join(ctl), UNIT,
                                                                       "" if a.system else "--user ", UNIT))
    else:
        print("next: %s daemon-reload && %s enable --now %s" % (" ".join(ctl), " ".join(ctl), UNIT))
    return 0
