"""A good device's ack rate and latency while the bridge is flooded (issue 11).

For each hostile kind, a fresh bridge process listens on udp://127.0.0.1 (subprocess, as
deployed: its own GIL), an attacker thread sends that kind as fast as it can (at most
ATTACK_RATE datagrams/s, from one source address, or from 64 for `spoofed_ports`), and a
good device sends N level reports stop-and-wait (each resent after 1 s, at most 3 times,
as a real device does after its ack timeout). Printed per kind: acks received, acks on
the first try, ack latency (first send -> ack) p50 / p90 / max, datagrams the attacker
sent, what the bridge counted, and how much log it wrote. Bounded: N frames, 3 tries of
1 s each, so at most ~90 s per kind; typically ~4 s. 127.0.0.1 only.

  .venv/bin/python tests/benchmarks/bench_flood.py                  # this tree's bridge
  .venv/bin/python tests/benchmarks/bench_flood.py --bridge-root DIR  # another tree's (e.g. an
                                          # export of an older commit), same attacks and device
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import cbor2  # noqa: E402

from host_tools import registry as reg  # noqa: E402
from protocol import framing, wire  # noqa: E402

KEY = bytes(range(32))
WRONG = bytes(range(100, 132))
DEV = "dev1"
N = 30
ATTACK_RATE = 3000      # datagrams/s at most
HELLO = {0: 1, 1: 2, 2: "1.0", 3: "virtual", 4: "TONER-1", 6: 1000, 7: 0, 9: 4}


def level(seq):
    return {1: max(1, 3000 - seq), 2: 50, 6: 8}


def body(fr):
    return framing.decode_frame(wire.unframe(fr))


def kinds():
    """name -> (datagrams the attacker cycles through, number of source sockets)."""
    own = [wire.pack(KEY, DEV, s, level(s)) for s in range(1, N + 1)]
    return {
        "none": ([], 1),
        # finding 1: re-encoded copies of the device's own next frames, sent first
        "reencoded_copies": ([framing.encode_frame(b"\xd9\xd9\xf7" + body(f)) for f in own], 1),
        # finding 2: regular expressions (tag 35) a permissive decoder compiles, ~40 ms each
        "costly_tags": ([framing.encode_frame(cbor2.dumps(cbor2.CBORTag(17, [
            b"\xa2\x01\x04\x06A\x01", {4: DEV.encode(), 5: cbor2.CBORTag(35, "[a-z\u0100-\uffff]{1,9999}x" * 12 + str(i))},
            b"\xa0", b"12345678"]))) for i in range(2000)], 1),
        # finding 3: 4 KB datagrams of zero-separated junk (was ~200 chunks, each logged)
        "zero_split_4k": ([(b"\x00" + bytes([1 + i % 200]) * 19) * 205 for i in range(50)], 1),
        "bad_mac": ([wire.pack(WRONG, DEV, s, level(s)) for s in range(1000, 1200)], 1),
        "unknown_device": ([wire.pack(WRONG, "ghost", s, level(s)) for s in range(200)], 1),
        "replayed_frame": ([wire.pack(KEY, DEV, 0, HELLO)], 1),
        "noise": ([bytes([1 + (i * 7 + j) % 250 for j in range(120)]) for i in range(200)], 1),
        "spoofed_ports": ([bytes([1 + (i * 7 + j) % 250 for j in range(120)]) for i in range(200)], 64),
    }


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def run_kind(name, datagrams, n_sources, bridge_root, work):
    work.mkdir()
    regpath = work / "registry.json"
    reg.add_device(regpath, DEV, KEY.hex(), board="virtual")
    port = free_port()
    log = open(work / "bridge.log", "wb")
    env = dict(os.environ, PYTHONPATH=str(bridge_root))
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "bridge", "--listen", "udp://127.0.0.1:%d" % port,
                             "--uplink", "jsonl:%s" % (work / "up.jsonl"), "--registry", str(regpath),
                             "--db", str(work / "b.sqlite"), "--print-every", "0"],
                            stdout=log, stderr=log, cwd=str(bridge_root), env=env)
    addr = ("127.0.0.1", port)
    dev = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dev.bind(("127.0.0.1", 0))
    dev.settimeout(1.0)
    try:
        for _ in range(100):                      # the bridge is up when it acks the hello
            dev.sendto(wire.pack(KEY, DEV, 0, HELLO), addr)
            try:
                dev.recvfrom(512)
                break
            except socket.timeout:
                continue
        else:
            raise SystemExit("bridge did not start for %s; see %s" % (name, work / "bridge.log"))
        log_before = (work / "bridge.log").stat().st_size
        stop, sent = threading.Event(), [0]

        def attack():
            socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n_sources)]
            i, t0 = 0, time.monotonic()
            while datagrams and not stop.is_set():
                try:
                    socks[i % n_sources].sendto(datagrams[i % len(datagrams)], addr)
                except OSError:
                    pass
                i += 1
                ahead = i / ATTACK_RATE - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            sent[0] = i
            for s in socks:
                s.close()

        th = threading.Thread(target=attack, daemon=True)
        th.start()
        time.sleep(0.3)
        lat, first, acked = [], 0, 0
        t_start = time.monotonic()
        for seq in range(1, N + 1):
            fr = wire.pack(KEY, DEV, seq, level(seq))
            t0 = time.monotonic()
            for attempt in range(3):
                dev.sendto(fr, addr)
                ok = False
                end = time.monotonic() + 1.0
                while time.monotonic() < end:
                    try:
                        dev.settimeout(max(0.01, end - time.monotonic()))
                        got = dev.recvfrom(512)[0]
                    except socket.timeout:
                        break
                    if got == got and b"\x00" in got:     # any downlink; check it is our ack
                        from host_tools import codec
                        try:
                            _, _, _, payload, _ = codec.parse_envelope(framing.decode_frame(wire.unframe(got)))
                            if cbor2.loads(payload) == {0: 16, 1: seq}:
                                ok = True
                                break
                        except Exception:
                            continue
                if ok:
                    acked += 1
                    first += attempt == 0
                    lat.append((time.monotonic() - t0) * 1000)
                    break
            time.sleep(0.05)
        elapsed = time.monotonic() - t_start
        stop.set()
        th.join(5)
        time.sleep(1.3)                            # one more status file write
        try:
            c = json.loads((work / "b.sqlite.status.json").read_text())["counters"]
        except (OSError, ValueError, KeyError):
            c = {}
        log_bytes = (work / "bridge.log").stat().st_size - log_before
    finally:
        dev.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    counted = {k: c[k] for k in ("malformed", "noise", "bad_crc", "bad_mac", "unknown_device", "duplicates",
                                 "replay", "source_limited") if c.get(k)}
    return {"kind": name, "acked": acked, "first": first, "p50": percentile(lat, 50), "p90": percentile(lat, 90),
            "max": max(lat) if lat else float("nan"), "sent": sent[0], "rate": sent[0] / max(elapsed, 1e-9),
            "log_kb": log_bytes / 1024, "counted": counted}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bridge-root", default=str(ROOT), help="tree whose host_tools/ runs as the bridge")
    ap.add_argument("--only", help="comma-separated kinds")
    a = ap.parse_args()
    ks = kinds()
    names = a.only.split(",") if a.only else list(ks)
    print("bridge: %s   device: %d level reports stop-and-wait, resend after 1 s (3 tries)" % (a.bridge_root, N))
    print("%-17s %7s %7s %8s %8s %8s %9s %8s %8s  %s" % ("flood", "acked", "1st try", "p50 ms", "p90 ms", "max ms",
                                                         "sent", "sent/s", "log KB", "bridge counted"))
    with tempfile.TemporaryDirectory(prefix="bench_flood_") as tmp:
        for name in names:
            dg, ns = ks[name]
            r = run_kind(name, dg, ns, Path(a.bridge_root), Path(tmp) / name)
            print("%-17s %4d/%-2d %4d/%-2d %8.1f %8.1f %8.1f %9d %8.0f %8.1f  %s" % (
                r["kind"], r["acked"], N, r["first"], N, r["p50"], r["p90"], r["max"], r["sent"], r["rate"],
                r["log_kb"], " ".join("%s=%d" % kv for kv in r["counted"].items())), flush=True)


if __name__ == "__main__":
    main()
