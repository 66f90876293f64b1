"""README's "The parts on their own" block, run as written (paths aside, and `.venv/bin/`
as this interpreter's bin directory): a running board, a bridge that stores its reports,
a monitor row and a plot. If README and the tools drift apart, this fails."""
import os
import pty
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ptyterm import drain_until_exit, read_until

ROOT = Path(__file__).resolve().parents[2]


def readme_block():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"The parts on their own:\s*```sh\n(.*?)```", text, re.S)
    assert m, "README has no 'The parts on their own' block"
    cmds = []
    for line in m.group(1).splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith(".venv/bin/consumables"):
            cmds.append(line)
    return cmds


def logs(d):
    # the background programs' last words, for a failure's message
    return {f.name: f.read_text(errors="replace")[-1500:] for f in sorted(d.glob("*.log"))}


def test_readme_parts_on_their_own(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("virtual board only")
    cmds = readme_block()
    assert [c.split()[1] for c in cmds][:4] == ["board", "deploy", "bridge", "monitor"], cmds
    env = dict(os.environ, HOME=str(tmp_path), CONSUMABLES_REGISTRY="", CONSUMABLES_DB="")
    env.pop("CONSUMABLES_REGISTRY")
    env.pop("CONSUMABLES_DB")
    bindir = Path(sys.executable).parent
    procs = []

    def argv(cmd):
        a = shlex.split(cmd.replace("/tmp/vb", str(tmp_path / "vb")))
        return [str(bindir / "consumables")] + a[1:]

    try:
        for cmd in cmds:
            name = cmd.split()[1]
            background = cmd.endswith("&")
            if background:
                with open(tmp_path / (name + ".log"), "wb") as log:   # shown if a step fails
                    procs.append(subprocess.Popen(argv(cmd.rstrip("&").strip()), cwd=tmp_path, env=env,
                                                  stdout=log, stderr=subprocess.STDOUT))
                if name == "board":
                    end = time.monotonic() + 15
                    while not (tmp_path / "vb").exists() and time.monotonic() < end:
                        time.sleep(0.1)
                    time.sleep(1)
                if name == "bridge":     # a user starts the monitor once the bridge is up
                    end = time.monotonic() + 20
                    while not (tmp_path / "bridge.sqlite").exists() and time.monotonic() < end:
                        time.sleep(0.1)
                continue
            if name == "monitor":       # the live table, on a terminal: watch it for the device
                mo, so = pty.openpty()
                m = subprocess.Popen(argv(cmd), cwd=tmp_path, env=dict(env, COLUMNS="160", LINES="40"),
                                     stdin=subprocess.DEVNULL, stdout=so, stderr=so)
                os.close(so)
                # the device's row once it has reported (its consent column filled): a row
                # from the registry alone says "?", and `send ... consent` then refuses
                reported = re.compile(rb"toner-01[^\n]*\b(none|order-only|reminders|automatic|full)\b")
                out = read_until(mo, lambda o: reported.search(o), 60)
                m.send_signal(signal.SIGINT)
                drain_until_exit(mo, m, 10)
                m.wait(1)
                os.close(mo)
                (tmp_path / "monitor.out").write_bytes(out)
                rows = [x for x in out.split(b"\n") if b"toner-01" in x]
                assert reported.search(out), (rows[-3:], out[-1000:], logs(tmp_path))
                continue
            if name in ("send", "keys"):
                r = subprocess.run(argv(cmd), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
                assert r.returncode == 0, (cmd, r.stdout, r.stderr, logs(tmp_path))
                continue
            if name == "plot":
                # reports of a simulated day or more first (speed 60000: a day in ~1.5 s)
                time.sleep(5)
            r = subprocess.run(argv(cmd), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
            assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-2000:], logs(tmp_path))
        assert (tmp_path / "uplink.jsonl").exists() and "level" in (tmp_path / "uplink.jsonl").read_text()
        png = tmp_path / "toner.png"
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
