"""Uplinks: HTTP webhook through an outage, CBOR format, sqlite, MQTT on a real mosquitto."""
import json
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cbor2
import pytest

from host_tools import registry as reg
from host_tools.bridge import Bridge
from host_tools.uplinks import HttpUplink, SqliteUplink, make_uplink, safe_url
from test_bridge_support import DEV, Replies, frame, level, make_registry, wait_for
from netutil import MOSQUITTO, Broker, free_port  # noqa: E402 (tests/ is on sys.path)


def quiet(event, **kw):
    pass


class Hook:
    """A webhook receiver on 127.0.0.1:<free port> answering from a list of status codes."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.calls = []
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                code = hook.statuses.pop(0) if hook.statuses else 200
                hook.calls.append((code, dict(self.headers), body))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/hook" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def _bridge(tmp_path, uplinks, **kw):
    return Bridge(tmp_path / "b.sqlite", reg.Registry(make_registry(tmp_path)), uplinks, [], log=quiet,
                  backoff=0.05, max_backoff=0.2, **kw).start()


def test_http_outage_then_recovery(tmp_path):
    hook = Hook([500, 500, 503, 200])
    b = _bridge(tmp_path, [HttpUplink(hook.url)])
    try:
        r = Replies()
        for seq in (1, 2, 3):
            b.core.handle_chunk(frame(seq, level(900 - seq))[1:-1], r)
        assert len(r) == 3  # acked on storage, whatever the uplink does
        assert wait_for(lambda: b.store.queued() == 0)
        assert b.count["uplink_errors"] == 3 and b.count["forwarded"] == 3
        ok = [c for c in hook.calls if c[0] == 200]
        assert [c[1]["Idempotency-Key"] for c in ok] == ["dev1:1", "dev1:2", "dev1:3"]  # in order
        # every failed attempt was for the first message: nothing overtook it
        assert {c[1]["Idempotency-Key"] for c in hook.calls if c[0] != 200} == {"dev1:1"}
        doc = json.loads(ok[0][2])
        assert doc["device"] == DEV and doc["seq"] == 1 and doc["remaining"] == 899 and doc["type"] == "level"
        assert ok[0][1]["Content-Type"] == "application/json"
    finally:
        b.stop()
        hook.close()


def test_http_cbor_format(tmp_path):
    hook = Hook([])
    b = _bridge(tmp_path, [make_uplink(hook.url + "?format=cbor")])
    try:
        b.core.handle_chunk(frame(1)[1:-1], Replies())
        assert wait_for(lambda: hook.calls)
        code, headers, body = hook.calls[0]
        assert headers["Content-Type"] == "application/cbor" and cbor2.loads(body)["seq"] == 1
        assert "format=" not in headers.get("Host", "")
    finally:
        b.stop()
        hook.close()


def test_http_unreachable_counts_errors(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there
    b = _bridge(tmp_path, [HttpUplink("http://127.0.0.1:%d/x" % port, timeout=1)])
    try:
        b.core.handle_chunk(frame(1)[1:-1], Replies())
        assert wait_for(lambda: b.count["uplink_errors"] >= 2)
        assert b.store.queued() == 1
    finally:
        b.stop()


def test_sqlite_uplink_idempotent(tmp_path):
    out = tmp_path / "supplier.sqlite"
    b = _bridge(tmp_path, [SqliteUplink(str(out))])
    try:
        for seq in (1, 2):
            b.core.handle_chunk(frame(seq)[1:-1], Replies())
        assert wait_for(lambda: b.store.queued() == 0)
        b.store.db.execute("UPDATE outbox SET forwarded=0")  # as if the marks were lost
        b.forwarders[0].wake()
        assert wait_for(lambda: b.store.queued() == 0)
    finally:
        b.stop()
    db = sqlite3.connect(out)
    rows = db.execute("SELECT device, seq, type, json FROM messages ORDER BY seq").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(DEV, 1, "level"), (DEV, 2, "level")]
    assert json.loads(rows[0][3])["idempotency_key"] == "dev1:1"


@pytest.mark.parametrize("url", ["ftp://x/y", "jsonl:", "http:///nohost", "mqtt://:1883/x", "nonsense"])
def test_bad_uplink_urls(url):
    with pytest.raises(ValueError):
        make_uplink(url)


def test_credentials_masked():
    assert safe_url("mqtt://user:secret@broker:1883/p") == "mqtt://broker:1883/p"
    assert "secret" not in make_uplink("https://u:secret@example.com/hook").name


# ---------------------------------------------------------------------- MQTT
@pytest.fixture
def broker(tmp_path):
    if not MOSQUITTO:
        pytest.skip("mosquitto binary not found (apt-get install mosquitto)")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


def _subscriber(port, topic):
    import paho.mqtt.client as mqtt
    got = []
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_connect = lambda cl, *a: (cl.subscribe(topic, qos=1), ready.set())
    c.on_message = lambda cl, u, m: got.append((m.topic, json.loads(m.payload)))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(5)
    time.sleep(0.1)  # SUBACK
    return c, got


def test_mqtt_publish_and_commands(tmp_path, broker):
    sub, got = _subscriber(broker.port, "shop/#")
    b = _bridge(tmp_path, [make_uplink("mqtt://127.0.0.1:%d/shop" % broker.port)])
    try:
        r = Replies()
        b.core.handle_chunk(frame(1, level(321, 32))[1:-1], r)
        assert wait_for(lambda: [g for g in got if g[0] == "shop/dev1/level"])
        topic, doc = [g for g in got if g[0] == "shop/dev1/level"][0]
        assert doc["seq"] == 1 and doc["remaining"] == 321 and doc["idempotency_key"] == "dev1:1"
        assert wait_for(lambda: b.store.queued() == 0)

        # a downlink command from the supplier, then a bad one
        sub.publish("shop/dev1/cmd", json.dumps({"type": "config", "report_s": 60}), qos=1)
        sub.publish("shop/dev1/cmd", json.dumps({"type": "config", "report_s": -5}), qos=1)
        assert wait_for(lambda: b.count["bad_commands"] == 1 and len(r) >= 2)
        cmds = [p for _, _, p in r.decoded()]
        assert cmds[-1] == {0: 17, 2: 60}
    finally:
        b.stop()
        sub.loop_stop()
        sub.disconnect()


def test_mqtt_broker_outage_loses_nothing(tmp_path, broker):
    b = _bridge(tmp_path, [make_uplink("mqtt://127.0.0.1:%d/shop" % broker.port)])
    try:
        b.core.handle_chunk(frame(1)[1:-1], Replies())
        assert wait_for(lambda: b.store.queued() == 0)
        broker.stop()
        b.core.handle_chunk(frame(2)[1:-1], Replies())
        assert wait_for(lambda: b.count["uplink_errors"] >= 1)
        assert b.store.queued() == 1  # no PUBACK, not marked forwarded
        broker.start()
        assert wait_for(lambda: b.store.queued() == 0, 10)
        assert b.count["forwarded"] == 2
    finally:
        b.stop()
