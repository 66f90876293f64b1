"""Prometheus metrics for the bridge (`consumables bridge --metrics HOST:PORT`, /metrics).

Read at scrape time, so they cost nothing between scrapes:
  consumables_bridge_<counter>_total     every bridge counter (frames, stored, acks, replay, ...)
  consumables_devices_seen               devices in the store
  consumables_devices_silent             of those, silent for longer than --ha-silence (default 2 h)
  consumables_uplink_queued{uplink}      stored messages not yet forwarded, per uplink
Observed as they happen:
  consumables_frame_ack_seconds          frame read from its link -> its ack sent (after its COMMIT)
  consumables_frame_uplink_seconds       frame stored -> forwarded and flushed by an uplink
  consumables_commit_frames              frames per durable COMMIT (group commit)
Exposition format: https://prometheus.io/docs/instrumenting/exposition_formats/
"""
from __future__ import annotations

import threading
import time

from host_tools.bridge import COUNTERS
from host_tools.bridgeconf import chain

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self, bridge, host: str, port: int, log=None, silent_s: float = 7200.0):
        from prometheus_client import CollectorRegistry, Histogram
        self.bridge, self.host, self.port = bridge, host, port
        self.silent_s = silent_s
        self.log = log or (lambda event, **kw: None)
        self.registry = CollectorRegistry()
        self.ack = Histogram("consumables_frame_ack_seconds", "Frame read from its link until its ack was sent",
                             buckets=LATENCY_BUCKETS, registry=self.registry)
        self.uplink = Histogram("consumables_frame_uplink_seconds", "Frame stored until an uplink forwarded it",
                                ["uplink"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch = Histogram("consumables_commit_frames", "Frames stored per durable COMMIT",
                               buckets=BATCH_BUCKETS, registry=self.registry)
        self.registry.register(_Collector(self))
        self.server = None
        core = bridge.core
        chain(core, "on_ack", self.ack.observe)
        chain(core, "on_commit", self.batch.observe)
        for f in bridge.forwarders:
            _time_uplink(f.uplink, self.uplink.labels(uplink=f.uplink.name))

    def start(self):
        """Serve /metrics; a port that cannot be bound is a startup error (ValueError)."""
        from prometheus_client import start_http_server
        try:
            self.server, self._thread = start_http_server(self.port, self.host, registry=self.registry)
        except OSError as e:
            raise ValueError("cannot serve metrics on %s:%d: %s" % (self.host, self.port, e.strerror)) from None
        self.log("metrics_started", url="http://%s:%d/metrics" % self.address)
        return self

    @property
    def address(self):
        return self.server.server_address[:2] if self.server else None

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class _Collector:
    """Counters and gauges read from the bridge at scrape time."""

    def __init__(self, m: Metrics):
        self.m = m

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        b = self.m.bridge
        snap = b.count.snapshot()
        for name in COUNTERS:
            yield CounterMetricFamily("consumables_bridge_" + name, "bridge counter %s" % name, value=snap.get(name, 0))
        try:
            seen, silent = b.store.device_activity(time.time() - self.m.silent_s)
            q = GaugeMetricFamily("consumables_uplink_queued", "Stored messages not yet forwarded", labels=["uplink"])
            for f in b.forwarders:
                q.add_metric([f.uplink.name], b.store.queued(f.uplink.name))
        except Exception as e:  # a closed or busy store must not break the scrape
            self.m.log("metrics_error", error=str(e))
            return
        yield GaugeMetricFamily("consumables_devices_seen", "Devices the bridge has stored a frame of", value=seen)
        yield GaugeMetricFamily("consumables_devices_silent", "Devices silent for longer than %.0f s"
                                % self.m.silent_s, value=silent)
        yield q


def _time_uplink(uplink, hist):
    """Observe stored -> forwarded for each record once its uplink's flush() returned."""
    send, flush = uplink.send, uplink.flush
    lock, sent = threading.Lock(), []

    def timed_send(rec):
        send(rec)
        with lock:
            sent.append(rec.received_at)

    def timed_flush():
        try:
            flush()
        except BaseException:
            with lock:   # not forwarded: they are sent (and timed) again
                sent.clear()
            raise
        now = time.time()
        with lock:
            done = sent[:]
            sent.clear()
        for t in done:
            hist.observe(max(0.0, now - t))
    uplink.send, uplink.flush = timed_send, timed_flush
