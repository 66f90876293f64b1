"""A small load run: 200 simulated devices against a real bridge process over UDP loopback.

Zero loss, zero duplicates in the uplink, every message acked (and each ack verified by
the device with its own key), everything the devices created stored exactly once.
The figures (python -m host_tools.loadgen, tests/benchmarks/bench_load.py) use the same code.
"""
import json
import time
from pathlib import Path

import pytest

from host_tools import loadgen


def test_200_devices_zero_loss_no_duplicates(tmp_path):
    st = loadgen.steady(devices=200, seconds=4.0, interval=1.6, drain=10.0, workdir=tmp_path)
    print(loadgen.describe(st))
    assert st["created"] >= 400                        # ~500: every device sent a few
    assert st["lost"] == 0 and st["overflow"] == 0
    assert st["acked"] == st["created"]
    assert st["uplink_missing"] == 0 and st["uplink_dups"] == 0
    assert st["bad_acks"] == 0
    kinds = st["kinds"]
    assert kinds["hello"] == 200 and kinds["level"] > kinds.get("usage", 0) + kinds.get("event", 0)
    c = st["bridge_counters"]
    assert c["stored"] == st["created"] and c["forwarded"] == st["created"]
    for bad in ("bad_mac", "unknown_device", "replay", "malformed", "bad_crc", "noise", "store_errors"):
        assert c[bad] == 0, bad
    # the uplink file itself: one line per (device, seq), each device's seqs 1..n in order
    lines = [json.loads(x) for x in (tmp_path / "uplink.jsonl").read_text().splitlines() if x.strip()]
    keys = [(x["device"], x["seq"]) for x in lines]
    assert len(keys) == len(set(keys)) == st["created"]
    per_dev = {}
    for d, s in keys:
        per_dev.setdefault(d, []).append(s)
    assert len(per_dev) == 200
    assert all(v == list(range(1, len(v) + 1)) for v in per_dev.values())
    assert st["bridge_rss_kb"] and st["bridge_rss_kb"] > 1000


def test_devices_resend_until_acked(tmp_path):
    """Stop-and-wait: frames the bridge never saw (it starts late) are resent and land once."""
    run = loadgen.Run(20, workdir=tmp_path, ack_timeout=0.2)
    try:
        f = run.fleet
        sched = [(0.0, i) for i in range(20)]          # all due at once, the bridge not yet up
        f.run(list(sched), until=0.0, drain_until=time.monotonic() + 0.5)
        assert f.resends >= 20 and all(m.acked is None for m in f.msgs)
        run.bridge.start()
        f.run([], until=time.monotonic(), drain_until=time.monotonic() + 15)
        assert all(m.acked is not None for m in f.msgs) and len(f.msgs) == 20
        f.wait_uplink(f.msgs, 10)
        assert f.tail.dups == 0 and len(f.tail.seen) == 20
    finally:
        run.bridge.stop()
        run.fleet.close()
    assert run.bridge.final_counters()["stored"] == 20


def test_only_loopback_and_bounded_arguments(capsys):
    r = loadgen.BridgeProcess("/nonexistent", "/nonexistent/r.json")
    assert r.addr[0] == "127.0.0.1"
    for bad in (["--devices", "0"], ["--devices", "100000"], ["--seconds", "100000"], ["--factor", "1"]):
        with pytest.raises(SystemExit):
            loadgen.main(bad)
    assert Path(loadgen.__file__).read_text().count("0.0.0.0") == 0
