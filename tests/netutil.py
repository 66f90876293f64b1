"""Network helpers shared by the host and HIL tests: a free loopback port and a real
Mosquitto broker the test starts and stops itself (Debian package `mosquitto`)."""
import os
import shutil
import socket
import subprocess
import time

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    """mosquitto on a loopback port. persistence=True keeps a subscriber's QoS 1 session
    across a stop/start (it saves its state on SIGTERM)."""

    def __init__(self, work, port=None, persistence=False):
        self.port = port or free_port()
        work.mkdir(parents=True, exist_ok=True)
        self.conf = work / "mosquitto.conf"
        conf = "listener %d 127.0.0.1\nallow_anonymous true\n" % self.port
        if persistence:
            conf += "persistence true\npersistence_location %s/\n" % work
        else:
            conf += "persistence false\n"
        self.conf.write_text(conf)
        self.p = None

    def start(self):
        self.p = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def stop(self):
        if self.p:
            self.p.terminate()
            self.p.wait(5)
            self.p = None
