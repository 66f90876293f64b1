"""`consumables keys rotate DEVICE` end to end on the virtual board (issue 11; THREAT_MODEL T24).

The real firmware deployed with mpremote, a real bridge process on its serial line (and
on UDP 127.0.0.1 for the old-key frames an attacker with the leaked key would send):
rotate, the bridge sends the rekey downlink under the old key, the device derives the new
key, stores it in /provision.json and speaks under it; nothing it sent is lost or stored
twice; the old key is accepted during the grace period, refused after it.
"""
import json
import socket
import time

from host_tools import registry as reg
from host_tools.keys import main_keys
from host_tools.rig import Rig
from protocol import wire
from netutil import free_port  # noqa: E402  (tests/ on sys.path: conftest)

GRACE_S = 25.0


def test_keys_rotate_on_the_virtual_board(tmp_path, capsys):
    port = free_port(socket.SOCK_DGRAM)
    rig = Rig(tmp_path / "rig", speed=20000, seed=11, device_id="toner-kr", consent=4,
              bridge_args=["--listen", "udp://127.0.0.1:%d" % port])
    with rig:
        dev = rig.device_id
        rig.wait_for(lambda m: len([x for x in m if x["device"] == dev and x["type"] == "level"]) >= 3,
                     timeout=120, what="three level reports under the first key")
        old = bytes.fromhex(rig.key)
        assert main_keys(["rotate", dev, "--registry", str(rig.registry), "--grace", str(GRACE_S)]) == 0
        t_rot = time.time()
        new = bytes.fromhex(json.loads(rig.registry.read_text())["devices"][dev]["key"])
        assert new == reg.rekeyed(old, json.loads(rig.registry.read_text())["devices"][dev]["rekey_nonce"])
        assert reg.fingerprint(new) in capsys.readouterr().out
        # the device switches: its frames now open the new key's window (key_epoch 1)
        rig.wait_for(lambda m: [x for x in m if x.get("key_epoch") == 1 and x["type"] == "level"],
                     timeout=60, what="a level report under the new key")
        prov = json.loads((tmp_path / "rig" / "flash" / "provision.json").read_text())
        assert prov["key"] == new.hex()                       # persisted, so it survives a reboot
        assert "rekey_sent" in rig.bridge_log.read_text()
        # nothing lost or stored twice: the device's seqs go on across the switch
        seqs = [x["seq"] for x in rig.messages() if x["device"] == dev]
        assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)
        hi = max(seqs)

        # the old key in the grace period: accepted (as the device itself might still use it)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        try:
            if time.time() - t_rot < GRACE_S - 5:
                s.sendto(wire.pack(old, dev, hi + 5000, {1: 100, 2: 10, 6: 5}), ("127.0.0.1", port))
                s.recvfrom(512)                               # acked (under the old key)
            # after the grace period: refused, whatever the seq
            time.sleep(max(0.0, t_rot + GRACE_S + 1 - time.time()))
            before = rig.status().get("counters", {}).get("bad_mac", 0)
            s.sendto(wire.pack(old, dev, hi + 6000, {1: 100, 2: 10, 6: 5}), ("127.0.0.1", port))
            deadline = time.time() + 10
            while time.time() < deadline and rig.status().get("counters", {}).get("bad_mac", 0) <= before:
                time.sleep(0.2)
            assert rig.status()["counters"]["bad_mac"] > before
        finally:
            s.close()
        # and the device goes on under the new key
        n = len(rig.messages())
        rig.wait_for(lambda m: len(m) > n + 2, timeout=60, what="reports after the grace period")
        assert all(x.get("key_epoch") == 1 for x in rig.messages()[n:] if x["device"] == dev)
