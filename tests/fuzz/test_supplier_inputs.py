"""Property tests (hypothesis) on the bridge's supplier-side inputs: MQTT command messages
(topic PREFIX/DEVICE/cmd, a JSON payload) and HTTP webhook answers. Whatever arrives, the
bridge neither crashes nor hangs: a bad command is counted in `bad_commands` and never
queued, a valid one is queued (or refused by the consent rule), and an HTTP answer is a
success (2xx) or an UplinkError, never anything else."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from host_tools import registry as reg
from host_tools.bridge import Bridge
from host_tools.uplinks import HttpUplink, MqttUplink, UplinkError
from host_tools.store import Record
from protocol import schema

DEV = "dev1"


def make_registry(tmp):
    path = tmp / "registry.json"
    reg.add_device(path, DEV, bytes(range(32)).hex(), board="virtual")
    return path

SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]

# JSON-ish command documents: mostly near-valid, so the fuzzer reaches the schema checks
names = st.sampled_from(sorted(n for n, _ in schema.NAMES.values()) + ["", "x" * 40])
fields = sorted({f for _, fs in schema.NAMES.values() for f in fs}) + ["x"]
values = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats()
                      | st.text(max_size=12), lambda k: st.lists(k, max_size=3)
                      | st.dictionaries(st.text(max_size=8), k, max_size=3), max_leaves=6)
small = st.integers(0, 5) | st.integers(0, 100000) | st.sampled_from(["placed", "shipped", "k-1"])
docs = st.dictionaries(st.text(max_size=20), values, max_size=6) | st.builds(
    lambda t, f: dict(f, type=t), names, st.dictionaries(st.sampled_from(fields), small | values, max_size=4))
payloads = docs.map(lambda d: json.dumps(d).encode()) | st.binary(max_size=200)
devices = st.sampled_from([DEV, "other", "", "a/b", "x" * 30])


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("supplier")
    quiet = lambda *a, **k: None  # noqa: E731
    b = Bridge(tmp / "b.sqlite", reg.Registry(make_registry(tmp)), [], [], log=quiet)
    yield b


@settings(max_examples=600, deadline=None, suppress_health_check=SLOW)
@given(devices, payloads)
@example(DEV, b'{"type": "config", "report_s": 600}')     # valid: queued
@example(DEV, b'{"type": "consent", "level": 0}')          # a lowering: queued
@example(DEV, b'{"type": "consent", "level": 4}')          # a raise: refused, counted
@example(DEV, b'{"type": "config", "report_s": -1}')       # out of range: counted
@example(DEV, b'\xff{')                                     # not JSON: counted
def test_mqtt_command_messages_never_crash_the_bridge(bridge, device, payload):
    u = MqttUplink("mqtt://127.0.0.1:1/shop")          # never connected: the handler alone
    u.on_command = bridge.core.queue_command
    bad0 = bridge.count.c["bad_commands"]
    q0 = bridge.store.db.execute("SELECT COUNT(*) FROM downlink").fetchone()[0]
    u._on_message(None, None, SimpleNamespace(topic="shop/%s/cmd" % device, payload=payload))
    bad = bridge.count.c["bad_commands"] - bad0
    queued = bridge.store.db.execute("SELECT COUNT(*) FROM downlink").fetchone()[0] - q0
    assert bad + queued == 1, (payload, bad, queued)   # every input: counted or queued, once
    if queued:
        doc = json.loads(payload)
        schema.from_named(doc["type"], {k: v for k, v in doc.items() if k != "type"})  # it was valid


class _Answer(BaseHTTPRequestHandler):
    answer = (200, b"")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, body = _Answer.answer
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def webhook():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d/hook" % srv.server_address[1]
    srv.shutdown()


@settings(max_examples=150, deadline=None, suppress_health_check=SLOW)
@given(st.integers(100, 599), st.binary(max_size=300))
def test_http_answers_are_success_or_uplink_error(webhook, status, body):
    _Answer.answer = (status, body)
    rec = Record(1, DEV, 1, "level", {"fill_pct": 50}, b"", 0.0)
    u = HttpUplink(webhook, timeout=5)
    try:
        u.send(rec)
        ok = True
    except UplinkError:
        ok = False
    assert ok == (200 <= status < 300) or status < 200   # 1xx: urllib reads on; never a crash
