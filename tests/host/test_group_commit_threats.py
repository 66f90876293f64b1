"""Group commit (issue 14) under the bridge's security rules (issue 11): a batch is
handled datagram by datagram for budgets, key generations and the seq ceiling, and only
the durable COMMIT is shared (BridgeCore.handle_batch, docs/THREAT_MODEL.md T21, T23)."""
import json

from host_tools import registry as reg
from host_tools.keys import main_keys
from host_tools.store import MAX_SEQ_STEP
from protocol import messages as M
from test_bridge_support import DEV, HELLO, KEY, KEY2, Replies, level
from test_threat_rotate import ROUTE, chunk, core  # noqa: F401 (core: the fixture)

NOISY = "udp:6.6.6.6:1000"


def test_a_batch_charges_each_datagram_to_its_source(core):
    """A flood batched with a good device's frames: the noisy address is cut off after its
    budget, datagram by datagram, and the good frames still share one COMMIT."""
    t = [1000.0]
    core.sources.clock = lambda: t[0]   # no token comes back during the test
    r = Replies()
    items = []
    for i in range(200):
        items.append((b"junk%d" % i, Replies(), NOISY))
        if i % 50 == 0:
            items.append((chunk(i // 50, KEY, HELLO if i == 0 else None), r, ROUTE))
    c0 = core.store.commits
    out = core.handle_batch(items)
    noisy = [o for (_, _, link), o in zip(items, out) if link == NOISY]
    assert noisy.count("noise") == 50 and noisy.count("source_limited") == 150
    assert [o for (_, _, link), o in zip(items, out) if link == ROUTE] == ["stored"] * 4
    assert [p for _, _, p in r.decoded()] == [{0: M.ACK, 1: s} for s in range(4)]
    assert core.store.commits - c0 == 1      # the new device's replay window rides in it too


def test_a_new_key_generation_is_born_in_its_first_frames_commit(core):
    r = Replies()
    assert core.handle_batch([(chunk(s, KEY, HELLO if s == 0 else None), r, ROUTE) for s in range(4)]) \
        == ["stored"] * 4
    reg.add_device(core.regpath, DEV, KEY2.hex(), board="virtual")   # re-provisioned: seq from 0
    r2 = Replies()
    c0 = core.store.commits
    out = core.handle_batch([(chunk(0, KEY2, HELLO), r2, ROUTE), (chunk(1, KEY2), r2, ROUTE),
                             (chunk(4, KEY), Replies(), ROUTE)])
    assert out == ["stored", "stored", "bad_mac"] and core.store.commits - c0 == 1
    assert [p for _, _, p in r2.decoded(KEY2)] == [{0: M.ACK, 1: 0}, {0: M.ACK, 1: 1}]
    rows = core.store.db.execute("SELECT fp, epoch, max_seq FROM keygens WHERE device=? ORDER BY epoch",
                                 (DEV,)).fetchall()
    assert rows == [(reg.fingerprint(KEY), 0, 3), (reg.fingerprint(KEY2), 1, 1)]
    keys = [rec.idempotency_key for rec in core.store.pending("jsonl:/dev/null")]
    assert keys == ["dev1:0", "dev1:1", "dev1:2", "dev1:3", "dev1:1:0", "dev1:1:1"]
    # the new window holds across batches: a retransmission and a replay of seq 1
    assert core.handle_batch([(chunk(1, KEY2), Replies(), ROUTE),
                              (chunk(1, KEY2, level(5)), Replies(), ROUTE)]) == ["duplicates", "replay"]


def test_the_seq_ceiling_counts_the_frames_waiting_in_the_group(core):
    """A jump past the highest seq is refused even when that seq is not committed yet."""
    r = Replies()
    out = core.handle_batch([(chunk(0, KEY, HELLO), r, ROUTE), (chunk(1 + MAX_SEQ_STEP, KEY), r, ROUTE),
                             (chunk(1, KEY), r, ROUTE)])
    assert out == ["stored", "seq_jump", "stored"]
    assert [p[1] for _, _, p in r.decoded()] == [0, 1]


def test_a_rotation_retransmission_in_the_same_batch_is_not_stored_twice(core):
    """The device's frame under the old key and its resend under the new one (its ack was
    lost) arrive in one batch: the first is committed before the second is compared."""
    assert core.handle_chunk(chunk(0, KEY, HELLO), Replies(), ROUTE) == "stored"
    assert main_keys(["rotate", DEV, "--registry", str(core.regpath), "--grace", "600"]) == 0
    new = bytes.fromhex(json.loads(core.regpath.read_text())["devices"][DEV]["key"])
    out = core.handle_batch([(chunk(1, KEY), Replies(), ROUTE), (chunk(1, new), Replies(), ROUTE),
                             (chunk(2, new), Replies(), ROUTE)])
    assert out == ["stored", "duplicates", "stored"]
    assert core.store.db.execute("SELECT COUNT(*) FROM messages WHERE device=? AND seq=1", (DEV,)).fetchone()[0] == 1
