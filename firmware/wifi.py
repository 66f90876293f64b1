"""Wi-Fi station join with exponential backoff (ESP32); a no-op where there is no
`network` module (the unix port talks over loopback).

ensure(now_ms) is called every cycle: it returns True when connected and otherwise starts
a join at most once per backoff period (doubling from 2 s to 5 min on each failure), so a
missing access point costs neither a busy loop nor a blocked agent.
"""
try:
    import network
except ImportError:
    network = None  # type: ignore[assignment]  # unix port: no Wi-Fi

from firmware import hal


class WiFi:
    def __init__(self, ssid, password, first_ms=2000, max_ms=300000):
        self.ssid = ssid
        self.password = password
        self.first = first_ms
        self.max = max_ms
        self.wait = first_ms
        self.next = None
        self.joins = 0
        self.wlan = None
        if network is not None:
            self.wlan = network.WLAN(network.STA_IF)
            self.wlan.active(True)

    def connected(self):
        return self.wlan is None or self.wlan.isconnected()

    def ensure(self, now_ms=None):
        if self.connected():
            self.wait = self.first
            return True
        now = hal.ticks_ms() if now_ms is None else now_ms
        if self.next is not None and hal.ticks_diff(now, self.next) < 0:
            return False
        self.joins += 1
        wlan = self.wlan
        assert wlan is not None    # connected() is True without a radio
        try:
            wlan.connect(self.ssid, self.password)
        except OSError:
            pass
        # a join takes seconds: check back after the backoff, not by spinning here
        self.next = hal.ticks_add(now, self.wait)
        self.wait = min(self.wait * 2, self.max)
        return False

    def off(self):
        if self.wlan is not None:
            self.wlan.active(False)
