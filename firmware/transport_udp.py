"""UDP transport: one datagram per frame to the bridge (host, port from provisioning).
On an ESP32 the Wi-Fi join (wifi.py) comes first; send() while not joined returns False
and the outbox simply resends after its timeout."""
import socket

from protocol.framing import Deframer


class UDP:
    def __init__(self, host, port, local_port=0, wifi=None):
        self.wifi = wifi
        self.host = host
        self.port = port
        self.local_port = local_port
        self.sock = None
        self.addr = None
        self.df = Deframer()
        self._buf = bytearray(600)
        self.sent = 0

    def ready(self):
        if self.wifi is not None and not self.wifi.ensure():
            return False
        if self.sock is None:
            try:
                self.addr = socket.getaddrinfo(self.host, self.port)[0][-1]
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                if self.local_port:
                    s.bind(socket.getaddrinfo("0.0.0.0", self.local_port)[0][-1])
                s.setblocking(False)
                self.sock = s
            except OSError:
                return False
        return True

    def send(self, frame):
        if not self.ready():
            return False
        s = self.sock
        if s is None:
            return False
        try:
            s.sendto(frame, self.addr)
            self.sent += 1
            return True
        except OSError:
            return False

    def poll(self):
        if self.sock is None:
            return []
        out = []
        for _ in range(8):                  # bounded per cycle
            try:
                n = self.sock.readinto(self._buf)
            except OSError:                 # EAGAIN: nothing waiting
                break
            if not n:
                break
            out.extend(self.df.feed(self._buf[:n]))
            self.df.feed(b"\x00")           # a datagram is a whole frame: never join two
        return out

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def open(t, prov):
    w = None
    wcfg = prov.get("wifi")
    if wcfg:
        from firmware import wifi
        w = wifi.WiFi(wcfg.get("ssid", ""), wcfg.get("password", ""))
    return UDP(t.get("host", "127.0.0.1"), t.get("port", 5683), t.get("local_port", 0), w)
