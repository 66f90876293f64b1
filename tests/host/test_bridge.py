"""BridgeCore: verify, store, ack, dedupe, replay, error counting (no threads)."""
import time
import json
import os
import sqlite3
import stat

import pytest

from host_tools import registry as reg
from host_tools.bridge import BridgeCore, Counters
from host_tools.store import Store
from protocol import framing, messages
from protocol.framing import Deframer
from test_bridge_support import DEV, HELLO, KEY, KEY2, Replies, chunk, decode_down, frame, level, make_registry

UP = "jsonl:/dev/null"


@pytest.fixture
def env(tmp_path):
    logs = []
    regpath = make_registry(tmp_path)
    store = Store(tmp_path / "b.sqlite")
    core = BridgeCore(store, reg.Registry(regpath), [UP], log=lambda e, **kw: logs.append(dict(kw, event=e)))
    core.logs = logs
    core.regpath = regpath
    yield core
    store.close()


def test_verify_store_ack(env):
    r = Replies()
    assert env.handle_chunk(chunk(frame(1, HELLO)), r, "test") == "stored"
    assert env.handle_chunk(chunk(frame(2, level(480, 48, 20, 500, 40))), r, "test") == "stored"
    acks = r.decoded()
    assert [(k, p) for k, _, p in acks] == [(DEV, {0: messages.ACK, 1: 1}), (DEV, {0: messages.ACK, 1: 2})]
    assert acks[0][1] < acks[1][1]  # downlink seq increases
    assert [x["seq"] for x in env.store.history(DEV, ("hello", "level"))] == [1, 2]
    assert env.store.queued(UP) == 2
    dev = env.store.devices()[0]
    assert dev["level"]["remaining"] == 480 and dev["consent"] == 4 and dev["link"] == "test"
    assert env.count["stored"] == 2 and env.count["acks"] == 2
    assert any(e["event"] == "frame" and e["seq"] == 2 for e in env.logs)


def test_a_boot_hello_gets_the_wall_clock(env):
    # a hello with a boot count is a boot: after a power cut an ESP32's RTC restarted at 0,
    # so the bridge answers with the wall clock after the ack (firmware/clock.py set_wall)
    r = Replies()
    assert env.handle_chunk(chunk(frame(1, {**HELLO, 10: 3})), r, "test") == "stored"
    got = r.decoded()
    assert [p[0] for _, _, p in got] == [messages.ACK, messages.TIME], got
    assert abs(got[1][2][1] - time.time()) < 60 and got[0][1] < got[1][1]
    r2 = Replies()
    env.handle_chunk(chunk(frame(2, HELLO)), r2, "test")      # no boot count: an ack only
    assert [p[0] for _, _, p in r2.decoded()] == [messages.ACK]


def test_duplicate_is_reacked_not_restored(env):
    r = Replies()
    f = frame(7)
    assert env.handle_chunk(chunk(f), r) == "stored"
    assert env.handle_chunk(chunk(f), r) == "duplicates"
    (_, d1, p1), (_, d2, p2) = r.decoded()
    assert p1 == p2 == {0: 16, 1: 7} and d2 > d1
    assert env.store.queued(UP) == 1 and env.count["duplicates"] == 1


def test_replay_rejected_and_counted(env):
    r = Replies()
    env.handle_chunk(chunk(frame(1, level(500))), r)
    env.handle_chunk(chunk(frame(5, level(450))), r)
    # same seq, different (validly signed) bytes: a replay or a device bug, never stored
    assert env.handle_chunk(chunk(frame(1, level(10))), r) == "replay"
    # an old seq never stored (below the high-water mark)
    assert env.handle_chunk(chunk(frame(3)), r) == "replay"
    assert len(r) == 2 and env.count["replay"] == 2
    assert [x["remaining"] for x in env.store.history(DEV)] == [500, 450]


def _bad_crc_chunk():
    body = framing.decode_frame(chunk(frame(1)))
    c = framing.crc16(body) ^ 0x0101
    return framing.cobs_encode(body + bytes((c >> 8, c & 0xFF)))


def test_bad_input_counted_never_acked(env, tmp_path):
    r = Replies()
    assert env.handle_chunk(chunk(frame(1, key=KEY2)), r) == "bad_mac"
    assert env.handle_chunk(chunk(frame(1, dev="stranger")), r) == "unknown_device"
    assert env.handle_chunk(_bad_crc_chunk(), r) == "bad_crc"
    # REPL text and log prints share the UART with frames
    d = Deframer()
    stream = b"MPY: soft reboot\r\n>>> print('hi')\r\nhi\r\n" + frame(2) + b"level=50%\r\n" + frame(3)
    outcomes = [env.handle_chunk(c, r) for c in d.feed(stream)]
    assert outcomes.count("stored") == 2 and "noise" in outcomes
    assert env.count["bad_mac"] == 1 and env.count["unknown_device"] == 1 and env.count["bad_crc"] == 1
    assert env.count["noise"] >= 1
    assert [p[1] for _, _, p in r.decoded()] == [2, 3]


def test_ack_only_after_commit(env, tmp_path, monkeypatch):
    r = Replies()

    def boom(*a, **kw):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(env.store, "store_message", boom)
    assert env.handle_chunk(chunk(frame(1)), r) == "store_errors"
    assert r == [] and env.count["store_errors"] == 1
    monkeypatch.undo()

    # when the ack goes out, another connection already sees the committed row
    seen = []

    def reply(fr):
        db = sqlite3.connect(tmp_path / "b.sqlite")
        seen.append(db.execute("SELECT COUNT(*) FROM messages WHERE device=? AND seq=1", (DEV,)).fetchone()[0])
        db.close()

    assert env.handle_chunk(chunk(frame(1)), reply) == "stored"  # the device's retransmission
    assert seen == [1]


def test_registry_reload_adds_device(env, tmp_path):
    r = Replies()
    assert env.handle_chunk(chunk(frame(1, dev="dev2", key=KEY2)), r) == "unknown_device"
    reg.add_device(env.regpath, "dev2", KEY2.hex())
    assert env.handle_chunk(chunk(frame(1, dev="dev2", key=KEY2)), r) == "stored"
    assert decode_down(r[0], KEY2)[0] == "dev2"


def test_restart_keeps_counters_and_dedupe(tmp_path):
    regpath = make_registry(tmp_path)
    r = Replies()
    s1 = Store(tmp_path / "b.sqlite")
    c1 = BridgeCore(s1, reg.Registry(regpath), [UP])
    c1.handle_chunk(chunk(frame(1)), r)
    c1.handle_chunk(chunk(frame(2)), r)
    s1.close()
    s2 = Store(tmp_path / "b.sqlite")
    c2 = BridgeCore(s2, reg.Registry(regpath), [UP])
    assert c2.handle_chunk(chunk(frame(2)), r) == "duplicates"
    assert c2.handle_chunk(chunk(frame(1, level(1))), r) == "replay"
    assert c2.handle_chunk(chunk(frame(3)), r) == "stored"
    dseqs = [d for _, d, _ in r.decoded()]
    assert dseqs == sorted(set(dseqs))  # the downlink counter never repeats across restarts
    s2.close()


def test_keys_never_logged_and_registry_private(env, tmp_path):
    r = Replies()
    env.handle_chunk(chunk(frame(1)), r)
    env.handle_chunk(chunk(frame(1, key=KEY2)), r)
    env.handle_chunk(chunk(frame(1, dev="x")), r)
    text = json.dumps(env.logs) + repr(env.registry) + json.dumps(reg.masked(reg.load(env.regpath)))
    assert KEY.hex() not in text and "****" in text
    assert stat.S_IMODE(os.stat(env.regpath).st_mode) == 0o600


def test_missing_registry_is_clear_error(tmp_path):
    with pytest.raises(reg.RegistryError, match="not found"):
        reg.Registry(tmp_path / "nope.json")


def test_counters_object():
    c = Counters()
    c("frames")
    c("frames", 2)
    assert c.snapshot()["frames"] == 3


def test_fuzzed_chunks_never_raise(env):
    import random
    rnd = random.Random(7)
    r = Replies()
    good = chunk(frame(1))
    outcomes = set()
    for i in range(3000):
        if i % 3 == 0:
            c = bytes(rnd.randrange(1, 256) for _ in range(rnd.randrange(1, 80)))
        elif i % 3 == 1:  # a damaged envelope inside a frame with a valid CRC: parser hardening
            body = bytearray(framing.decode_frame(good))
            for _ in range(rnd.randrange(1, 4)):
                body[rnd.randrange(len(body))] = rnd.randrange(256)
            c = chunk(framing.encode_frame(bytes(body)))
        else:  # a valid frame with bytes flipped (kept non-zero so it stays one chunk)
            c = bytearray(good)
            for _ in range(rnd.randrange(1, 4)):
                c[rnd.randrange(len(c))] = rnd.randrange(1, 256)
            c = bytes(c)
        outcomes.add(env.handle_chunk(c, r))
    assert outcomes <= {"noise", "bad_crc", "bad_mac", "malformed", "unknown_device", "stored", "duplicates",
                        "replay"}
    assert env.count["frames"] == 3000 and {"bad_mac", "malformed", "bad_crc", "noise"} <= outcomes
