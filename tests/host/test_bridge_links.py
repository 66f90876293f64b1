"""The bridge over real transports: UDP on loopback, serial on a pty (with replug),
jsonl forwarding across a restart, and the CLI's error handling."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest

from host_tools import registry as reg
from host_tools.bridge import Bridge, main_bridge
from host_tools.links import SerialLink, UdpLink
from host_tools.uplinks import JsonlUplink
from protocol.framing import Deframer
from test_bridge_support import DEV, KEY, decode_down, frame, level, make_registry, udp_bridge_argv, wait_for

ROOT = Path(__file__).resolve().parents[2]


def quiet(event, **kw):
    pass


def jsonl_lines(path):
    if not os.path.exists(path):
        return []
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def udp_client():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    return s


def test_udp_roundtrip_and_jsonl(tmp_path):
    out = tmp_path / "up.jsonl"
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(make_registry(tmp_path)), [JsonlUplink(str(out))],
               [UdpLink("udp://127.0.0.1:0")], log=quiet).start()
    try:
        addr = b.links[0].address
        s = udp_client()
        s.sendto(frame(1, level(700, 70)), addr)
        kid, _, ack = decode_down(s.recvfrom(512)[0])
        assert kid == DEV and ack == {0: 16, 1: 1}
        s.sendto(b"garbage without frame", addr)
        lines = wait_for(lambda: jsonl_lines(out))
        assert lines[0]["device"] == DEV and lines[0]["seq"] == 1 and lines[0]["type"] == "level"
        assert lines[0]["remaining"] == 700 and lines[0]["fill_pct"] == 70
        assert wait_for(lambda: b.count["noise"] == 1)
        # the status file the monitor reads
        st = wait_for(lambda: b.status_file.exists() and json.loads(b.status_file.read_text()))
        assert "counters" in st and "devices" in st
    finally:
        b.stop()


def test_restart_resumes_forwarding_without_duplicates(tmp_path):
    out = tmp_path / "later" / "up.jsonl"  # parent missing: the uplink is "down"
    regpath = make_registry(tmp_path)
    b1 = Bridge(tmp_path / "b.sqlite", reg.Registry(regpath), [JsonlUplink(str(out))],
                [UdpLink("udp://127.0.0.1:0")], log=quiet, backoff=0.05, max_backoff=0.1).start()
    s = udp_client()
    for seq in range(1, 6):
        s.sendto(frame(seq, level(600 - seq)), b1.links[0].address)
        assert decode_down(s.recvfrom(512)[0])[2][1] == seq
    assert wait_for(lambda: b1.count["uplink_errors"] >= 1)
    assert b1.store.queued() == 5
    b1.stop()

    out.parent.mkdir()
    b2 = Bridge(tmp_path / "b.sqlite", reg.Registry(regpath), [JsonlUplink(str(out))],
                [UdpLink("udp://127.0.0.1:0")], log=quiet, backoff=0.05).start()
    try:
        assert wait_for(lambda: len(jsonl_lines(out)) == 5)
        s.sendto(frame(5, level(595)), b2.links[0].address)  # lost ack: the device retransmits
        assert decode_down(s.recvfrom(512)[0])[2] == {0: 16, 1: 5}
        s.sendto(frame(6, level(594)), b2.links[0].address)
        s.recvfrom(512)
        assert wait_for(lambda: len(jsonl_lines(out)) == 6)
        # crash window: lines written but not marked forwarded -> not written twice
        b2.store.db.execute("UPDATE outbox SET forwarded=0")
    finally:
        b2.stop()
    b3 = Bridge(tmp_path / "b.sqlite", reg.Registry(regpath), [JsonlUplink(str(out))], [], log=quiet).start()
    try:
        assert wait_for(lambda: b3.store.queued() == 0)
    finally:
        b3.stop()
    assert [x["seq"] for x in jsonl_lines(out)] == [1, 2, 3, 4, 5, 6]


def _pty():
    m, s = os.openpty()
    tty.setraw(s)
    return m, s


def _read_frames(fd, n, timeout=3.0):
    d, got, end = Deframer(), [], time.monotonic() + timeout
    os.set_blocking(fd, False)
    while len(got) < n and time.monotonic() < end:
        try:
            data = os.read(fd, 1024)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        got += [b"\x00" + c + b"\x00" for c in d.feed(data)]
    return got


def test_serial_pty_with_replug(tmp_path):
    port = tmp_path / "ttyUSB0"  # a stable name, like /dev/serial/by-id/...
    m, s = _pty()
    os.symlink(os.ttyname(s), port)
    logs = []
    link = SerialLink(str(port), 921600, log=lambda e, **kw: logs.append(e), backoff=0.05, max_backoff=0.2)
    link.open()
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(make_registry(tmp_path)), [JsonlUplink(str(tmp_path / "o"))],
               [link], log=quiet).start()
    try:
        os.write(m, b"boot log line\r\n" + frame(1) + b">>> ")
        (ack,) = _read_frames(m, 1)
        assert decode_down(ack)[2] == {0: 16, 1: 1}
        # unplug: the device node vanishes, reads fail with EIO
        os.close(m)
        os.close(s)
        os.unlink(port)
        assert wait_for(lambda: "serial_lost" in logs)
        assert wait_for(lambda: "serial_open_failed" in logs)
        # replug: a new node under the same name
        m, s = _pty()
        os.symlink(os.ttyname(s), port)
        assert wait_for(lambda: link.opens == 2)
        os.write(m, frame(1) + frame(2))  # the unacked retransmission, then the next one
        acks = [decode_down(a)[2][1] for a in _read_frames(m, 2)]
        assert acks == [1, 2]
        assert b.count["duplicates"] == 1 and b.count["stored"] == 2
    finally:
        b.stop()
        os.close(m)
        os.close(s)


def _run_cli(args, env=None):
    return subprocess.run([sys.executable, "-c", "import sys; from host_tools.bridge import main_bridge; "
                           "sys.exit(main_bridge(sys.argv[1:]))"] + args, cwd=ROOT, capture_output=True,
                          text=True, timeout=20, env=env)


@pytest.mark.parametrize("args, msg", [
    (["--listen", "udp://127.0.0.1:0", "--uplink", "ftp://x"], "unknown uplink"),
    (["--listen", "udp://127.0.0.1:0", "--uplink", "jsonl:o.jsonl", "--registry", "/nonexistent/r.json"], "not found"),
    (["--serial", "/dev/does-not-exist", "--uplink", "jsonl:o.jsonl"], "cannot open"),
    (["--listen", "tcp://x:1", "--uplink", "jsonl:o.jsonl"], "udp://HOST:PORT"),
    (["--uplink", "jsonl:o.jsonl"], "nothing to listen on"),
    (["--listen", "udp://127.0.0.1:0", "--baud", "fast", "--uplink", "jsonl:o"], "invalid int"),
])
def test_cli_bad_input_exit_2(tmp_path, args, msg, capsys):
    regpath = make_registry(tmp_path)
    if "--registry" not in args:
        args = args + ["--registry", str(regpath)]
    rc = main_bridge(args + ["--db", str(tmp_path / "b.sqlite")])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_runs_and_stops_on_sigterm(tmp_path):
    regpath = make_registry(tmp_path)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    out = tmp_path / "o.jsonl"
    env = dict(os.environ, CONSUMABLES_REGISTRY=str(regpath), CONSUMABLES_DB=str(tmp_path / "b.sqlite"))
    p = subprocess.Popen([sys.executable, "-c", "import sys; from host_tools.bridge import main_bridge; "
                          "sys.exit(main_bridge(sys.argv[1:]))", "--listen", "udp://127.0.0.1:%d" % port,
                          "--uplink", "jsonl:%s" % out], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        s = udp_client()
        s.settimeout(0.3)
        for _ in range(30):  # until the bridge is listening
            s.sendto(frame(1), ("127.0.0.1", port))
            try:
                assert decode_down(s.recvfrom(512)[0])[2] == {0: 16, 1: 1}
                break
            except socket.timeout:
                continue
        assert wait_for(lambda: len(jsonl_lines(out)) == 1)
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=10)
    assert p.returncode == 0
    events = [json.loads(x)["event"] for x in err.splitlines()]
    assert "frame" in events and "forwarded" in events and "bridge_stopped" in events
    assert KEY.hex() not in err


def _batches_link(group_wait):
    """A UdpLink whose batches are recorded as lists of chunks (and a queue-like wait)."""
    import queue
    link = UdpLink("udp://127.0.0.1:0", quiet, group_wait=group_wait)
    link.open()
    got = queue.Queue()
    return link, got, (lambda items: got.put([c for c, _, _ in items]))


def test_udp_frames_arriving_together_wait_once_for_company():
    link, got, on_batch = _batches_link(0.5)
    s = udp_client()
    try:
        s.sendto(b"one", link.address)
        s.sendto(b"two", link.address)   # both queued before the link reads: they arrived together
        link.start(None, on_batch)
        time.sleep(0.1)
        s.sendto(b"three", link.address)   # within the group wait: the same batch
        assert got.get(timeout=5) == [b"one", b"two", b"three"]
        assert got.empty()
    finally:
        link.stop()
        s.close()


def test_udp_a_lone_datagram_is_not_held_back():
    link, got, on_batch = _batches_link(30.0)   # a wait that would outlast the test
    s = udp_client()
    try:
        link.start(None, on_batch)
        for word in (b"alone", b"again"):
            s.sendto(word, link.address)
            assert got.get(timeout=10) == [word]
    finally:
        link.stop()
        s.close()


def test_bridge_group_wait_option_is_checked(tmp_path, capsys):
    rc = main_bridge(udp_bridge_argv(tmp_path, "--group-wait", "500"))
    assert rc == 2 and "--group-wait must be 0..100 ms" in capsys.readouterr().err
