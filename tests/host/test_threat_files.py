"""Finding 6 of issue 11 (docs/THREAT_MODEL.md T23): files and names.

The registry's temp file had a guessable name without exclusive create (a planted symlink
received the keys); the bridge's DB, WAL, status file and jsonl were world-readable; device
ids were only checked by deploy (a newline in one blocked the webhook for every device,
and the monitor rendered escapes and rich markup from ids); a '?' or '#' in --db reached
SQLite's URI parser. (The key on deploy's command line: test_deploy.py; duplicate map
keys in a signed payload: test_threat_envelope.py.)
"""
import io
import json
import os
import sqlite3
import stat

import pytest
from rich.console import Console

from host_tools import registry as reg
from host_tools.bridge import Bridge, BridgeCore
from host_tools.monitor import render, snapshot
from host_tools.store import Store
from host_tools.uplinks import HttpUplink, JsonlUplink
from protocol import cose, wire
from test_bridge_support import DEV, HELLO, KEY, KEY2, Replies, frame, make_registry, wait_for
from test_uplinks import Hook


def test_a_symlink_planted_at_the_registry_temp_name_gets_no_keys(tmp_path):
    path = tmp_path / "registry.json"
    loot = tmp_path / "attacker-readable"
    loot.write_text("")
    os.symlink(loot, path.with_name(path.name + ".tmp%d" % os.getpid()))    # the old, guessable name
    reg.add_device(path, DEV, KEY.hex())
    assert loot.read_text() == ""
    assert json.loads(path.read_text())["devices"][DEV]["key"] == KEY.hex()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []   # no temp file left


def test_every_file_the_bridge_creates_is_private(tmp_path):
    old = os.umask(0o022)                          # a usual login umask: files 0644 by default
    try:
        b = Bridge(tmp_path / "b.sqlite", reg.Registry(make_registry(tmp_path)),
                   [JsonlUplink(str(tmp_path / "up.jsonl"))], [], log=lambda *a, **k: None).start()
        try:
            assert b.core.handle_chunk(wire.unframe(frame(0, HELLO)), Replies(), "udp:10.0.0.7:4210") == "stored"
            assert wait_for(lambda: (tmp_path / "up.jsonl").exists() and (tmp_path / "up.jsonl").stat().st_size)
            b.write_status()
        finally:
            b.stop()
    finally:
        os.umask(old)
    made = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir() if p.name != "registry.json"}
    assert {"b.sqlite", "b.sqlite.status.json", "up.jsonl"} <= set(made)
    assert made == {n: 0o600 for n in made}, made


def test_a_device_id_with_a_newline_does_not_block_the_webhook(tmp_path):
    hook = Hook([])
    path = make_registry(tmp_path)
    doc = json.loads(path.read_text())
    doc["devices"]["ev\nil"] = {"key": KEY2.hex()}                 # put there by hand, not by deploy
    path.write_text(json.dumps(doc))
    logs = []
    log = lambda e, **kw: logs.append(dict(kw, event=e))  # noqa: E731
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(path, log), [HttpUplink(hook.url, timeout=2)], [],
               log=log, backoff=0.05, max_backoff=0.2).start()
    try:
        assert b.core.handle_chunk(wire.unframe(wire.pack(KEY2, "ev\nil", 0, HELLO)), Replies(), "udp:6.6.6.6:1") \
            == "unknown_device"
        assert b.core.handle_chunk(wire.unframe(frame(0, HELLO)), Replies(), "udp:10.0.0.7:4210") == "stored"
        assert wait_for(lambda: len(hook.calls) == 1)
        assert hook.calls[0][1]["Idempotency-Key"] == "dev1:0"
        assert any(e["event"] == "registry_bad_entry" and "\\n" in e["device"] for e in logs)
    finally:
        b.stop()
        hook.close()


def test_the_monitor_shows_ids_escaped_never_as_markup_or_terminal_codes(tmp_path):
    s = Store(tmp_path / "b.sqlite")
    evil = "x\x1b[2J[bold red]FAKE[/bold red]\n"
    s.db.execute("INSERT INTO devices(device, link) VALUES (?, ?)", (evil, "udp:[blink]1.2.3.4[/blink]:1"))
    s.close()
    buf = io.StringIO()
    Console(file=buf, width=200, force_terminal=True, color_system="truecolor").print(
        render(*snapshot(tmp_path / "b.sqlite")))
    out = buf.getvalue()
    assert "\x1b[2J" not in out and "\\x1b" in out
    assert "[bold red]FAKE[/bold red]" in out and "[blink]" in out     # shown as text
    assert "\x1b[5m" not in out and "\x1b[1;31m" not in out           # not applied


@pytest.mark.parametrize("name", ["a#b.sqlite", "db?mode=memory", "x?vfs=unix-none&mode=ro#frag"])
def test_db_is_a_path_never_a_uri(tmp_path, name):
    path = tmp_path / name
    core = BridgeCore(Store(path), reg.Registry(make_registry(tmp_path)), [])
    assert core.handle_chunk(wire.unframe(frame(0, HELLO)), Replies(), "udp:10.0.0.7:4210") == "stored"
    core.store.close()
    assert path.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(name[:2])][0] == name
    devices, _ = snapshot(path)                                       # the monitor: read-only, same file
    assert [d["device"] for d in devices] == [DEV]
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1
    db.close()
