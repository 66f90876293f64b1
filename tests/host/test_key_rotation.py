"""Key rotation without a bridge restart.

`consumables deploy --key NEW` rewrites the device's registry entry atomically (tmp +
fsync + rename, mode 0600, host_tools/deploy.register); the running bridge reloads the
registry when the file changes (mtime/size/inode). From then on frames MACed with the old
key fail (bad_mac, no ack, never forwarded) and frames with the new key are stored, acked
with the new key, forwarded. The device keeps its sequence counter across the re-deploy,
so the new key continues above the old high-water mark.
"""
import json
import os
import socket
import stat
from pathlib import Path

import pytest

from host_tools import registry as reg
from host_tools.bridge import Bridge
from host_tools.links import UdpLink
from host_tools.uplinks import JsonlUplink
from protocol import cose, framing, wire
from protocol.errors import AuthError
from test_bridge_support import DEV, decode_down, level, wait_for

OLD = bytes.fromhex("01" * 32)
NEW = bytes.fromhex("a7" * 16 + "3c" * 16)


def jsonl_lines(path):
    if not os.path.exists(path):
        return []
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def rotate(path, device, key_hex):
    """What `consumables deploy --key` does to the registry (deploy.register), with the
    registry module's own atomic writer as a fallback if deploy is not importable."""
    try:
        from host_tools.deploy import register
    except ImportError:
        doc = reg.load(path)
        doc["devices"][device]["key"] = key_hex
        reg.save(path, doc)
        return
    register(path, device, key_hex, "virtual", "/dev/ttyUSB0")


@pytest.fixture
def bridge(tmp_path):
    regpath = tmp_path / "registry.json"
    reg.add_device(regpath, DEV, OLD.hex(), board="virtual")
    reg.add_device(regpath, "other", bytes(range(32)).hex(), board="virtual")
    out = tmp_path / "up.jsonl"
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(regpath), [JsonlUplink(str(out))],
               [UdpLink("udp://127.0.0.1:0")], log=lambda e, **kw: None, backoff=0.05).start()
    b.regpath, b.out = regpath, out
    try:
        yield b
    finally:
        b.stop()


def exchange(sock, addr, fr, timeout=1.0):
    """Send one frame; the reply frame, or None if there is none within timeout."""
    sock.settimeout(timeout)
    sock.sendto(fr, addr)
    try:
        return sock.recvfrom(512)[0]
    except socket.timeout:
        return None


def test_rotation_old_key_rejected_new_key_accepted(bridge):
    addr = bridge.links[0].address
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    started, reloads = bridge.started, bridge.registry.reloads
    try:
        for seq in (1, 2):
            ack = exchange(s, addr, wire.pack(OLD, DEV, seq, level(500 - seq)))
            assert decode_down(ack, OLD)[2] == {0: 16, 1: seq}

        rotate(bridge.regpath, DEV, NEW.hex())
        assert stat.S_IMODE(os.stat(bridge.regpath).st_mode) == 0o600
        assert reg.load(bridge.regpath)["devices"][DEV]["key"] == NEW.hex()
        assert reg.load(bridge.regpath)["devices"]["other"]["key"] == bytes(range(32)).hex()

        before = bridge.count.snapshot()
        # an attacker (or a stale board) holding the old key: rejected, no ack
        assert exchange(s, addr, wire.pack(OLD, DEV, 3, level(1)), 0.5) is None
        assert exchange(s, addr, wire.pack(OLD, DEV, 2, level(498)), 0.5) is None   # even an old frame
        assert wait_for(lambda: bridge.count["bad_mac"] - before["bad_mac"] == 2)
        # the re-deployed board: the new key, its seq continuing
        ack = exchange(s, addr, wire.pack(NEW, DEV, 3, level(497)))
        assert ack is not None
        assert decode_down(ack, NEW)[2] == {0: 16, 1: 3}       # acked with the new key ...
        with pytest.raises(AuthError):                          # ... which the old key cannot verify
            cose.verify(framing.decode_frame(wire.unframe(ack)), lambda k: OLD, cose.AAD_DOWN)
        assert bridge.registry.reloads > reloads and bridge.started == started   # no restart

        assert wait_for(lambda: len(jsonl_lines(bridge.out)) == 3)
        assert [(x["seq"], x["remaining"]) for x in jsonl_lines(bridge.out)] == [(1, 499), (2, 498), (3, 497)]
        assert bridge.count["stored"] == 3 and bridge.count["replay"] == 0
    finally:
        s.close()


def test_rotation_in_core_and_back(bridge):
    """Directly on the bridge core: every rotation takes effect on the next frame."""
    core = bridge.core
    sent = []
    assert core.handle_chunk(wire.unframe(wire.pack(OLD, DEV, 10, level())), sent.append, "t") == "stored"
    keys = [NEW, bytes.fromhex("5a" * 32), OLD]   # rotating back to an old key is allowed, seq still rules
    seq = 10
    for prev, key in zip([OLD] + keys, keys):
        rotate(bridge.regpath, DEV, key.hex())
        seq += 1
        assert core.handle_chunk(wire.unframe(wire.pack(prev, DEV, seq, level())), sent.append, "t") == "bad_mac"
        assert core.handle_chunk(wire.unframe(wire.pack(key, DEV, seq, level())), sent.append, "t") == "stored"
        assert decode_down(sent[-1], key)[2] == {0: 16, 1: seq}
    assert len(sent) == 4 and bridge.count["bad_mac"] == 3


def test_torn_registry_during_rotation_keeps_old_keys(bridge):
    """A half-written registry (an editor, a full disk) never drops every device."""
    core, sent = bridge.core, []
    bridge.regpath.write_text('{"devices": {"dev1": {"key": "' + NEW.hex()[:10])
    assert core.handle_chunk(wire.unframe(wire.pack(OLD, DEV, 1, level())), sent.append, "t") == "stored"
    with pytest.raises(Exception, match="not valid JSON|unreadable"):   # deploy refuses to build on it
        rotate(bridge.regpath, DEV, NEW.hex())
    reg.save(bridge.regpath, {"devices": {DEV: {"key": NEW.hex()}}})   # repaired
    assert core.handle_chunk(wire.unframe(wire.pack(OLD, DEV, 2, level())), sent.append, "t") == "bad_mac"
    assert core.handle_chunk(wire.unframe(wire.pack(NEW, DEV, 2, level())), sent.append, "t") == "stored"
