"""Threat-model findings in the bridge, fixed (docs/THREAT_MODEL.md T4, T15, T16, T17):

- a replayed frame (exact duplicate) never moves a device's reply route: commands keep
  going to the address its last newly stored frame came from (over real UDP sockets);
- re-acks of duplicates are budgeted per device and cost no fsync: downlink seqs are
  leased in blocks of 64, never reused after a SIGKILL (a real bridge process);
- consent can be lowered remotely, raised only with --customer-confirmed (audited), and
  never through the MQTT command path.

Figures: `.venv/bin/python tests/host/test_threat_bridge.py` replays one captured frame
10,000 times in-process and prints duplicates/s, re-acks sent and COMMITs (fsyncs).
"""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools import registry as reg
from host_tools.bridge import Bridge, BridgeCore
from host_tools.links import UdpLink
from host_tools.send import main_send
from host_tools.store import Store
from host_tools.uplinks import JsonlUplink
from protocol import messages as M
from protocol import wire
from test_bridge_support import DEV, HELLO, Replies, decode_down, frame, level, make_registry, wait_for

try:
    from host_tools.bridge import ReackLimiter
    from host_tools.store import DOWN_SEQ_LEASE
except ImportError:  # bench() run against the code before these fixes
    ReackLimiter = DOWN_SEQ_LEASE = None

ROOT = Path(__file__).resolve().parents[2]


def udp(timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(timeout)
    return s


def drain(sock, wait=0.3):
    """Every datagram that arrives within `wait` s of the last one, decoded."""
    got = []
    sock.settimeout(wait)
    try:
        while True:
            got.append(decode_down(sock.recvfrom(512)[0]))
    except socket.timeout:
        return got


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def udp_bridge(tmp_path):
    regpath = make_registry(tmp_path)
    logs = []
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(regpath), [JsonlUplink(str(tmp_path / "up.jsonl"))],
               [UdpLink("udp://127.0.0.1:0")], log=lambda e, **kw: logs.append(dict(kw, event=e)))
    b.logs, b.regpath = logs, regpath
    b.start()
    yield b
    b.stop()


# ------------------------------------------------------------------ 1. reply route hijack
def test_replay_from_other_address_does_not_divert_commands(udp_bridge):
    b = udp_bridge
    addr = b.links[0].address
    common = ["--db", b.store.path, "--registry", str(b.regpath)]
    device, attacker = udp(), udp()
    try:
        captured = frame(1, HELLO)                      # the hello reports consent 4
        device.sendto(captured, addr)
        assert decode_down(device.recvfrom(512)[0])[2] == {0: M.ACK, 1: 1}
        route = "udp:127.0.0.1:%d" % device.getsockname()[1]
        assert b.store.devices()[0]["link"] == route
        before = b.count.snapshot()

        # the attacker replays the captured frame from its own address, over and over
        for _ in range(50):
            attacker.sendto(captured, addr)
        assert wait_for(lambda: b.count["frames"] - before["frames"] == 50)
        to_attacker = drain(attacker)
        # a command queued now goes to the device, not to the attacker
        assert main_send([DEV, "config", "report_s=60"] + common) == 0
        got = wait_for(lambda: drain(device, 0.2), timeout=5)
        assert [p for _, _, p in got] == [{0: M.CONFIG, 2: 60}]
        assert drain(attacker) == []
        assert b.store.devices()[0]["link"] == route   # the monitor still shows the device's route

        # counted as duplicates, at most the "other" burst re-acked (to the replayer), no fsync each
        d = {k: v - before.get(k, 0) for k, v in b.count.snapshot().items() if v != before.get(k, 0)}
        print("\n50 replays from another address:", d, "re-acks to attacker:", len(to_attacker))
        assert d["duplicates"] == 50 and d["reacks_limited"] >= 47 and d.get("stored", 0) == 0
        assert len(to_attacker) <= 3 and all(p == {0: M.ACK, 1: 1} for _, _, p in to_attacker)

        # the device goes on: its next frame is stored and acked at its own address
        device.settimeout(10)      # (drain left 0.2 s: too short on a loaded machine)
        device.sendto(frame(2, level(480)), addr)
        assert decode_down(device.recvfrom(512)[0])[2] == {0: M.ACK, 1: 2}
        # the downlink counter is strictly increasing across everything sent to anyone
        dseqs = [d for _, d, _ in to_attacker + got]
        assert dseqs == sorted(set(dseqs))
        assert [e for e in b.logs if e["event"] == "duplicate"][-1]["reack"] is False
    finally:
        device.close()
        attacker.close()


def test_replay_does_not_pull_commands_to_a_stale_route(tmp_path):
    """A replayed duplicate is not a sign of life: queued commands wait for a newly stored
    frame instead of being sent (and marked sent) to wherever the replay came from."""
    regpath = make_registry(tmp_path)
    store = Store(tmp_path / "b.sqlite")
    core = BridgeCore(store, reg.Registry(regpath), ["jsonl:/dev/null"], fresh_s=0.0)
    try:
        dev_r, att_r = Replies(), Replies()
        f1 = frame(1, HELLO)
        assert core.handle_chunk(wire.unframe(f1), dev_r, "udp:10.0.0.7:4210") == "stored"
        core.queue_command(DEV, "config", {"report_s": 60})   # device not fresh (fresh_s=0): waits
        assert core.handle_chunk(wire.unframe(f1), att_r, "udp:6.6.6.6:1") == "duplicates"
        assert [p for _, _, p in att_r.decoded()] == [{0: M.ACK, 1: 1}]    # the re-ack only
        assert len(store.pending_downlinks(DEV)) == 1
        assert core.routes[DEV][0] == "udp:10.0.0.7:4210"
        assert core.handle_chunk(wire.unframe(frame(2)), dev_r, "udp:10.0.0.7:4210") == "stored"
        assert [p[0] for _, _, p in dev_r.decoded()] == [M.ACK, M.ACK, M.CONFIG]
        assert store.pending_downlinks(DEV) == []
    finally:
        store.close()


# ------------------------------------------------------------------ 2. re-ack budget
def test_reack_budget_keeps_the_device_answered_during_a_replay_flood(tmp_path):
    regpath = make_registry(tmp_path)
    store = Store(tmp_path / "b.sqlite")
    clock = FakeClock()
    core = BridgeCore(store, reg.Registry(regpath), ["jsonl:/dev/null"], reacks=ReackLimiter(clock=clock))
    try:
        me, them = Replies(), Replies()
        f1, f2 = frame(1, level(500)), frame(2, level(490))
        core.handle_chunk(wire.unframe(f1), me, "udp:dev")
        core.handle_chunk(wire.unframe(f2), me, "udp:dev")
        # a flood of the older frame, from the device's own address and from others
        for i in range(300):
            core.handle_chunk(wire.unframe(f1), them, "udp:dev" if i % 2 else "udp:att%d" % i)
        assert len(them) == 3 and core.count["reacks_limited"] == 297
        # the device lost the ack of its latest frame and resends it: still answered
        for _ in range(3):
            assert core.handle_chunk(wire.unframe(f2), me, "udp:dev") == "duplicates"
        assert [p[1] for _, _, p in me.decoded()] == [1, 2, 2, 2, 2]
        # the budget refills with time: 1 per 2 s on the route, 1 per 5 s elsewhere
        assert core.handle_chunk(wire.unframe(f2), me, "udp:dev") == "duplicates" and len(me) == 5
        clock.t += 2.0
        core.handle_chunk(wire.unframe(f2), me, "udp:dev")
        core.handle_chunk(wire.unframe(f1), them, "udp:att")
        assert len(me) == 6 and len(them) == 3
        clock.t += 3.0
        core.handle_chunk(wire.unframe(f1), them, "udp:att")
        assert len(them) == 4
        assert core.count["duplicates"] == 307 and core.count["stored"] == 2
    finally:
        store.close()


def test_down_seq_lease_one_commit_per_block(tmp_path):
    regpath = make_registry(tmp_path)
    store = Store(tmp_path / "b.sqlite")
    core = BridgeCore(store, reg.Registry(regpath), ["jsonl:/dev/null"],
                      reacks=ReackLimiter(route=(10 ** 9, 0), other=(10 ** 9, 0)))  # no budget: cost only
    try:
        r = Replies()
        f1 = wire.unframe(frame(1))
        core.handle_chunk(f1, r, "t")
        c0 = store.commits
        n = 640
        for _ in range(n):
            assert core.handle_chunk(f1, r, "t") == "duplicates"
        commits = store.commits - c0
        dseqs = [d for _, d, _ in r.decoded()]
        assert dseqs == list(range(1, n + 2))       # every re-ack a fresh, consecutive downlink seq
        assert commits == n // DOWN_SEQ_LEASE, commits     # was one COMMIT (fsync) per re-ack
        hw = store.db.execute("SELECT down_seq FROM devices").fetchone()[0]
        assert dseqs[-1] <= hw < dseqs[-1] + DOWN_SEQ_LEASE
        # a failed lease commit hands out nothing that is not on disk
        store._down[DEV] = (hw + 1, hw)
        store.db.execute("PRAGMA query_only=ON")
        with pytest.raises(sqlite3.Error):
            store.next_down_seq(DEV)
        store.db.execute("PRAGMA query_only=OFF")
        assert store.next_down_seq(DEV) == hw + 1
    finally:
        store.close()


def _bridge_proc(tmp_path, port):
    env = dict(os.environ, CONSUMABLES_REGISTRY=str(tmp_path / "registry.json"),
               CONSUMABLES_DB=str(tmp_path / "b.sqlite"))
    return subprocess.Popen([sys.executable, "-c", "import sys; from host_tools.bridge import main_bridge; "
                             "sys.exit(main_bridge(sys.argv[1:]))", "--listen", "udp://127.0.0.1:%d" % port,
                             "--uplink", "jsonl:%s" % (tmp_path / "up.jsonl")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ack(s, fr, port, tries=50):
    """Send until acked (the bridge may still be starting); returns (dseq, acked seq)."""
    s.settimeout(0.3)
    for _ in range(tries):
        s.sendto(fr, ("127.0.0.1", port))
        try:
            _, d, p = decode_down(s.recvfrom(512)[0])
            return d, p[1]
        except socket.timeout:
            continue
    raise AssertionError("no ack")


def test_down_seq_never_reused_after_sigkill(tmp_path):
    make_registry(tmp_path)
    probe = udp()
    port = probe.getsockname()[1]
    probe.close()
    s = udp()
    used, seq = [], 0
    try:
        for round_ in range(3):
            p = _bridge_proc(tmp_path, port)
            try:
                for _ in range(5):
                    seq += 1
                    d, acked = _ack(s, frame(seq), port)
                    assert acked == seq
                    used.append(d)
                d, acked = _ack(s, frame(seq), port)   # a retransmission: re-acked, fresh dseq
                assert acked == seq
                used.append(d)
            finally:
                p.send_signal(signal.SIGKILL)          # no clean shutdown, nothing flushed
                p.wait(10)
    finally:
        s.close()
    print("\ndownlink seqs across 3 SIGKILLs:", used)
    assert used == sorted(set(used)), used             # strictly increasing: never reused
    assert used[6] > used[5] and used[12] > used[11]   # each restart resumes above the lease


# ------------------------------------------------------------------ 3. consent
def test_send_refuses_consent_raise_without_customer_confirmation(tmp_path, capsys):
    regpath = make_registry(tmp_path)
    db = tmp_path / "b.sqlite"
    store = Store(db)
    core = BridgeCore(store, reg.Registry(regpath), ["jsonl:/dev/null"])
    common = ["--db", str(db), "--registry", str(regpath)]
    try:
        # never seen: the level is unknown, so anything but 0 may be a raise
        assert main_send([DEV, "consent", "reminders"] + common) == 2
        err = capsys.readouterr().err
        assert "--customer-confirmed" in err and "unknown" in err and len(err.strip().splitlines()) == 1
        assert main_send([DEV, "consent", "none"] + common) == 0
        # the device says hello at order-only
        core.handle_chunk(wire.unframe(frame(1, {**HELLO, 9: 1})), Replies(), "t")
        store.db.execute("DELETE FROM downlink")
        assert store.consent_floor(DEV) == 1
        assert main_send([DEV, "consent", "full"] + common) == 2
        assert "now 1 (order-only)" in capsys.readouterr().err
        assert store.pending_downlinks(DEV) == []
        assert main_send([DEV, "consent", "order-only"] + common) == 0   # not a raise
        # with the customer's confirmation: queued, said on stderr, audited
        assert main_send([DEV, "consent", "full", "--customer-confirmed"] + common) == 0
        out = capsys.readouterr()
        assert "queued consent" in out.out and "customer's confirmation" in out.err
        (a,) = store.audit_log(DEV)
        assert a["what"] == "consent_raise" and a["from"] == 1 and a["to"] == 4 and a["customer_confirmed"]
        # lower then raise again is a raise: the floor counts commands not yet confirmed by the device
        store.db.execute("DELETE FROM downlink")
        assert main_send([DEV, "consent", "0"] + common) == 0
        assert store.consent_floor(DEV) == 0
        assert main_send([DEV, "consent", "1"] + common) == 2
        capsys.readouterr()
        # the device applies 0 and reports it: the floor follows the report
        core.handle_chunk(wire.unframe(frame(2, {0: M.EVENT, 1: M.EV_CONSENT_CHANGED, 4: 0})), Replies(), "t")
        assert store.consent_floor(DEV) == 0
    finally:
        store.close()


def test_mqtt_command_path_can_only_lower_consent(tmp_path):
    regpath = make_registry(tmp_path)
    store = Store(tmp_path / "b.sqlite")
    logs = []
    core = BridgeCore(store, reg.Registry(regpath), ["jsonl:/dev/null"],
                      log=lambda e, **kw: logs.append(dict(kw, event=e)))
    try:
        assert core.queue_command(DEV, "consent", {"level": 2}) is None    # unknown level: refused
        core.handle_chunk(wire.unframe(frame(1, {**HELLO, 9: 3})), Replies(), "t")
        assert core.queue_command(DEV, "consent", {"level": 4}) is None
        assert core.count["bad_commands"] == 2
        assert [e["event"] for e in logs].count("consent_raise_refused") == 2
        assert core.queue_command(DEV, "consent", {"level": 2}) is not None  # lowering is fine
        assert core.queue_command(DEV, "consent", {"level": 3}) is None      # back up after it is not
        assert [json.loads(f) for (f,) in store.db.execute("SELECT fields FROM downlink")] == [{"level": 2}]
    finally:
        store.close()


# ------------------------------------------------------------------ figures
def bench(n=10000, out=print):
    """Replay one captured frame n times into a BridgeCore; report its cost. Works on the
    code before these fixes too (PYTHONPATH=<old checkout>): commits are counted by
    SQLite's trace callback, not by Store."""
    import tempfile
    runs = [("budget", {})]
    if ReackLimiter is not None:   # the lease alone, without the re-ack budget
        runs.append(("no budget", {"reacks": ReackLimiter(route=(10 ** 9, 0), other=(10 ** 9, 0))}))
    for label, kw in runs:
        with tempfile.TemporaryDirectory() as d:
            regpath = make_registry(Path(d))
            store = Store(Path(d) / "b.sqlite")
            commits = [0]
            store.db.set_trace_callback(lambda sql: commits.__setitem__(0, commits[0] + (sql.strip() == "COMMIT")))
            core = BridgeCore(store, reg.Registry(regpath), ["jsonl:/dev/null"], **kw)
            r = Replies()
            f1 = wire.unframe(frame(1))
            core.handle_chunk(f1, r, "udp:device")
            for route in ("udp:device", "udp:attacker"):
                del r[:]
                c0, t0 = commits[0], time.perf_counter()
                for _ in range(n):
                    core.handle_chunk(f1, r, route)
                dt = time.perf_counter() - t0
                out("%-9s replay x%d from %-12s %6.0f duplicates/s %6.0f re-acks/s  re-acks %5d  "
                    "COMMITs (fsync) %5d" % (label if ReackLimiter else "before", n, route, n / dt, len(r) / dt,
                                             len(r), commits[0] - c0))
            out("          reply route after the replays: %s" % core.routes.get(DEV, ("?",))[0])
            store.close()


if __name__ == "__main__":
    bench(int(sys.argv[1]) if len(sys.argv) > 1 else 10000)
