"""Prometheus metrics (host_tools/metrics.py): scraped over HTTP from a running bridge and
parsed with prometheus_client's own exposition parser."""
import argparse
import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from host_tools import bridgeconf, registry as reg
from host_tools.bridge import COUNTERS, Bridge, main_bridge
from host_tools.links import UdpLink
from host_tools.uplinks import JsonlUplink
from test_bridge_support import DEV, HELLO, KEY2, frame, level, make_registry, udp_bridge_argv, wait_for


def opts(**kw):
    p = argparse.ArgumentParser()
    bridgeconf.add_arguments(p)
    a = p.parse_args([])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def scrape(addr):
    with urllib.request.urlopen("http://%s:%d/metrics" % addr, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def running(tmp_path):
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(make_registry(tmp_path)),
               [JsonlUplink(str(tmp_path / "up.jsonl"))], [UdpLink("udp://127.0.0.1:0")], log=lambda *a, **k: None)
    ex = bridgeconf.attach(b, opts(metrics="127.0.0.1:0"), b.log)
    b.start()
    ex.start()
    yield b, ex.parts[0]
    ex.stop()
    b.stop()


def test_counters_gauges_and_histograms_are_scraped(running):
    b, m = running
    before = scrape(m.address)
    assert before[("consumables_bridge_frames_total", ())] == 0
    assert all(("consumables_bridge_%s_total" % c, ()) in before for c in COUNTERS)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    for seq, p in ((1, HELLO), (2, level(480)), (3, level(470))):
        sock.sendto(frame(seq, p), b.links[0].address)
        sock.recvfrom(512)                                  # acked
    sock.sendto(frame(9, key=KEY2), b.links[0].address)     # a bad MAC: counted, never acked
    assert wait_for(lambda: b.count["bad_mac"] == 1 and b.count["forwarded"] == 3)
    s = scrape(m.address)
    assert s[("consumables_bridge_frames_total", ())] == 4
    assert s[("consumables_bridge_stored_total", ())] == 3
    assert s[("consumables_bridge_acks_total", ())] == 3
    assert s[("consumables_bridge_bad_mac_total", ())] == 1
    assert s[("consumables_bridge_forwarded_total", ())] == 3
    assert s[("consumables_devices_seen", ())] == 1 and s[("consumables_devices_silent", ())] == 0
    up = (("uplink", b.forwarders[0].uplink.name),)
    assert s[("consumables_uplink_queued", up)] == 0
    assert s[("consumables_frame_ack_seconds_count", ())] == 3
    assert 0 < s[("consumables_frame_ack_seconds_sum", ())] < 5
    assert s[("consumables_frame_uplink_seconds_count", up)] == 3
    assert s[("consumables_commit_frames_sum", ())] == 3
    sock.close()


def test_queued_gauge_counts_what_an_uplink_has_not_taken(tmp_path):
    class Down(JsonlUplink):
        def open(self):
            from host_tools.uplinks import UplinkError
            raise UplinkError("down")
    b = Bridge(tmp_path / "b.sqlite", reg.Registry(make_registry(tmp_path)), [Down(str(tmp_path / "x.jsonl"))],
               [UdpLink("udp://127.0.0.1:0")], log=lambda *a, **k: None)
    ex = bridgeconf.attach(b, opts(metrics="127.0.0.1:0"), b.log)
    b.start()
    try:
        for seq in (1, 2):
            b.core.handle_chunk(frame(seq)[1:-1], lambda f: None, "test")
        s = scrape(ex.parts[0].address)
        assert s[("consumables_uplink_queued", (("uplink", b.forwarders[0].uplink.name),))] == 2
    finally:
        ex.stop()
        b.stop()


def test_bad_metrics_address_is_one_line(tmp_path, capsys):
    rc = main_bridge(udp_bridge_argv(tmp_path, "--metrics", "nope"))
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--metrics must be HOST:PORT" in err
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    rc = main_bridge(udp_bridge_argv(tmp_path, "--metrics", "127.0.0.1:%d" % busy.getsockname()[1]))
    err = capsys.readouterr().err
    assert rc == 2 and "cannot serve metrics" in err and err.count("\n") == 1
    busy.close()
