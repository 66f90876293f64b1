"""The supplier's side away for more than a simulated day, then back.

The virtual board keeps running (world speed 20000: a simulated day is 4.3 s) and the
bridge keeps storing and acking over the serial line, while both of its network uplinks
fail: the HTTP webhook answers 500 or hangs past the bridge's timeout, and the MQTT broker
(a real mosquitto the test starts) is stopped. Then both come back. Afterwards the webhook
and an MQTT subscriber each hold every message the bridge stored (its jsonl uplink), exactly
once after de-duplicating on the idempotency key, in order per device, and nothing the
device created is lost (assert_nothing_lost). Prints a TALLY line.

    .venv/bin/python -m pytest -q -s tests/hil/test_uplink_down.py
    UPLINK_DOWN_DAYS=7 ... for a simulated week
"""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from host_tools.rig import Rig
from netutil import MOSQUITTO, Broker, free_port  # noqa: E402 (tests/ is on sys.path)
from test_hil import assert_nothing_lost, tally_line  # noqa: E402 (tests/hil is on sys.path)

pytestmark = pytest.mark.hil

SPEED = 20000
DAYS = float(os.environ.get("UPLINK_DOWN_DAYS", "1.2"))
class Webhook:
    """The supplier's HTTP endpoint. down=True: odd requests get 500, even ones hang past the
    bridge's 10 s timeout. Every 200 is recorded (as the supplier would store it)."""

    def __init__(self):
        self.down = False
        self.got = []          # documents answered 200, in arrival order
        self.failed = 0
        self.n = 0
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.n += 1
                if hook.down:
                    hook.failed += 1
                    if hook.n % 2 == 0:
                        time.sleep(11)   # a timeout on the bridge's side
                        return
                    self.send_response(500)
                else:
                    hook.got.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d/hook" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def _subscriber(port, topic):
    import paho.mqtt.client as mqtt
    got = []
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="supplier-%d" % port, clean_session=False)
    c.on_connect = lambda cl, *a: (cl.subscribe(topic, qos=1), ready.set())
    c.on_message = lambda cl, u, m: got.append(json.loads(m.payload))
    c.reconnect_delay_set(0.2, 1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(5)
    time.sleep(0.2)  # SUBACK
    return c, got


def _once_in_order(docs, stored, what):
    """docs as the supplier got them == the bridge's stored messages, once each, in order per
    device (after de-duplicating on the idempotency key). Returns the raw duplicates."""
    seen, first = set(), []
    for d in docs:
        if d["idempotency_key"] not in seen:
            seen.add(d["idempotency_key"])
            first.append(d)
    want = [(m["device"], m["seq"]) for m in stored]
    got = [(d["device"], d["seq"]) for d in first]
    assert sorted(got) == sorted(want), "%s: missing %s, extra %s" % (
        what, sorted(set(want) - set(got))[:10], sorted(set(got) - set(want))[:10])
    for dev in {d for d, _ in got}:
        s = [q for d, q in got if d == dev]
        assert s == sorted(s), "%s: out of order for %s" % (what, dev)
    return len(docs) - len(first)


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto binary not found (apt-get install mosquitto)")
def test_uplink_down_for_a_simulated_day(request, tmp_path):
    if request.config.getoption("--port"):
        pytest.skip("needs the virtual board's world clock")
    hook = Webhook()
    broker = Broker(tmp_path / "mqtt", persistence=True)
    broker.start()
    sub, mq = _subscriber(broker.port, "shop/#")
    rig = Rig(tmp_path / "rig", speed=SPEED, seed=11, device_id="toner-up",
              bridge_args=["--uplink", hook.url, "--uplink", "mqtt://127.0.0.1:%d/shop" % broker.port])
    try:
        rig.start()
        rig.wait_for(lambda ms: len(ms) >= 3, 60, "messages with the uplinks up")
        assert rig.wait_for(lambda ms: len(hook.got) >= 3 and len(mq) >= 3 or None, 30, "webhook and MQTT")
        # the supplier goes away
        hook.down = True
        broker.stop()
        n0 = len(rig.messages())
        t0 = time.monotonic()
        time.sleep(DAYS * 86400 / SPEED)
        stored_down = len(rig.messages()) - n0
        # ... and comes back
        broker.start()
        hook.down = False
        t_back = time.monotonic()
        outage = t_back - t0
        rig.world("button")    # an order made after the outage: the run ends when it is through

        def through(ms):
            orders = [m for m in ms if m.get("kind_name") == "order_request" and m.get("trigger") == 0]
            if not orders:
                return None
            keys_h = {d["idempotency_key"] for d in hook.got}
            keys_m = {d["idempotency_key"] for d in mq}
            want = {"%s:%d" % (m["device"], m["seq"]) for m in ms}
            return want <= keys_h and want <= keys_m
        rig.wait_for(through, 120, "webhook and MQTT to catch up")
        recovery = time.monotonic() - t_back
        time.sleep(1)
        msgs = rig.messages()
        t = assert_nothing_lost(msgs)
        # the supplier may be a little ahead of the jsonl file we read: compare on what both have
        stored = msgs
        dup_h = _once_in_order([d for d in hook.got if (d["device"], d["seq"]) in {(m["device"], m["seq"]) for m in stored}],
                               stored, "webhook")
        dup_m = _once_in_order([d for d in mq if (d["device"], d["seq"]) in {(m["device"], m["seq"]) for m in stored}],
                               stored, "mqtt")
        c = rig.status().get("counters", {})
        tally_line("uplink down %.1f simulated days (%.1f s)" % (outage * SPEED / 86400, outage), t,
                   stored_while_down=stored_down, http_failed=hook.failed, http_dups=dup_h, mqtt_dups=dup_m,
                   uplink_errors=c.get("uplink_errors"), recovery_s="%.1f" % recovery)
        assert outage * SPEED >= 86400 and stored_down > 0
    finally:
        rig.stop()
        sub.loop_stop()
        sub.disconnect()
        broker.stop()
        hook.stop()
