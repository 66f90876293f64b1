"""`consumables keys rotate` on the bridge side, in process (docs/THREAT_MODEL.md T24);
end to end on the virtual board: tests/hil/test_key_rotate.py."""
import json
import time

import pytest

from host_tools import registry as reg
from host_tools.bridge import BridgeCore
from host_tools.keys import main_keys
from host_tools.store import Store
from protocol import messages as M, wire
from test_bridge_support import DEV, HELLO, KEY, Replies, frame, level, make_registry

ROUTE = "udp:10.0.0.7:4210"


def chunk(seq, key, payload=None):
    return wire.unframe(frame(seq, payload if payload is not None else level(max(1, 900 - seq)), key=key))


@pytest.fixture
def core(tmp_path):
    regpath = make_registry(tmp_path)
    store = Store(tmp_path / "b.sqlite")
    c = BridgeCore(store, reg.Registry(regpath), ["jsonl:/dev/null"], fresh_s=3600)
    c.regpath = regpath
    yield c
    store.close()


def _entry(core):
    return json.loads(core.regpath.read_text())["devices"][DEV]


def test_rekey_is_sent_under_the_old_key_after_the_ack_and_commands(core):
    r = Replies()
    assert core.handle_chunk(chunk(0, KEY, HELLO), r, ROUTE) == "stored"
    assert main_keys(["rotate", DEV, "--registry", str(core.regpath), "--grace", "600"]) == 0
    e = _entry(core)
    new = bytes.fromhex(e["key"])
    assert new == reg.rekeyed(KEY, e["rekey_nonce"]) and e["key_fp"] == reg.fingerprint(new)
    assert reg.masked(json.loads(core.regpath.read_text()))["devices"][DEV]["old_key"] == reg.MASK
    core.store.queue_downlink(DEV, "config", {"report_s": 60})
    r.clear()
    assert core.handle_chunk(chunk(1, KEY), r, ROUTE) == "stored"          # the old key, in grace
    got = [p for _, _, p in r.decoded(KEY)]                                # all under the old key
    assert got == [{0: M.ACK, 1: 1}, {0: M.CONFIG, 2: 60}, {0: M.REKEY, 1: e["rekey_nonce"]}]
    assert DEV not in core.routes            # nothing more until the device shows which key it has
    r.clear()
    assert core.handle_chunk(chunk(2, new), r, ROUTE) == "stored"          # it switched
    assert [p for _, _, p in r.decoded(new)] == [{0: M.ACK, 1: 2}]         # no rekey any more
    assert core.count["rekeys"] == 1


def test_a_retransmission_across_the_switch_is_not_stored_twice(core):
    r = Replies()
    assert core.handle_chunk(chunk(0, KEY, HELLO), r, ROUTE) == "stored"
    reg.rotate(core.regpath, DEV, 600)
    new = bytes.fromhex(_entry(core)["key"])
    assert core.handle_chunk(chunk(1, KEY), r, ROUTE) == "stored"          # its ack is lost ...
    r.clear()
    assert core.handle_chunk(chunk(1, new), r, ROUTE) == "duplicates"      # ... resent under the new key
    assert [p for _, _, p in r.decoded(new)] == [{0: M.ACK, 1: 1}]
    assert [rec.seq for rec in core.store.pending("jsonl:/dev/null")] == [0, 1]
    assert core.handle_chunk(chunk(2, new), r, ROUTE) == "stored"


def test_the_old_key_is_refused_once_the_grace_period_is_over(core):
    assert core.handle_chunk(chunk(0, KEY, HELLO), Replies(), ROUTE) == "stored"
    reg.rotate(core.regpath, DEV, 10, now=time.time() - 60)                # ended 50 s ago
    new = bytes.fromhex(_entry(core)["key"])
    assert core.handle_chunk(chunk(1, KEY), Replies(), ROUTE) == "bad_mac"
    assert core.handle_chunk(chunk(1, new), Replies(), ROUTE) == "stored"


def test_a_second_rotation_waits_for_the_first(core, capsys):
    assert main_keys(["rotate", DEV, "--registry", str(core.regpath)]) == 0
    assert main_keys(["rotate", DEV, "--registry", str(core.regpath)]) == 2
    assert "still in its grace period" in capsys.readouterr().err
    assert main_keys(["rotate", "nosuch", "--registry", str(core.regpath)]) == 2
    assert main_keys(["rotate", "BAD\n", "--registry", str(core.regpath)]) == 2


def test_a_registry_entry_whose_key_is_not_the_rekeyed_old_one_has_no_grace(core):
    """A hand-edited old_key that the current key does not derive from is ignored: no
    second key gets accepted by editing one field."""
    doc = json.loads(core.regpath.read_text())
    doc["devices"][DEV].update(old_key=("ab" * 32), old_until=time.time() + 600, rekey_nonce="00" * 16)
    reg.save(core.regpath, doc)
    assert core.registry.keys_for(DEV) == [(KEY, reg.fingerprint(KEY))]
