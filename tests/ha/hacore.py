"""A real Home Assistant core for tests: `hass -c DIR` from .cache/ha/venv (tests/ha/setup),
HTTP on a loopback port, onboarded through its REST API (no internet needed), the MQTT
integration added through the config-flow REST API, as a user does in the UI."""
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HASS = ROOT / ".cache" / "ha" / "venv" / "bin" / "hass"


def missing():
    """Why there is no Home Assistant to test against (for a skip), or None."""
    if HASS.exists():
        return None
    return "Home Assistant core not installed: run tests/ha/setup (needs Python 3.13)"


class HomeAssistant:
    def __init__(self, workdir: Path, port: int):
        self.dir = Path(workdir)
        self.port = port
        self.base = "http://127.0.0.1:%d" % port
        self.token = None
        self.proc = None

    def start(self, timeout=120.0):
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "configuration.yaml").write_text(
            "http:\n  server_host: 127.0.0.1\n  server_port: %d\n"
            "logger:\n  default: warning\n" % self.port)
        self.log = open(self.dir / "hass.out", "wb")
        # --skip-pip: everything it needs is in the venv already; it never reaches out
        self.proc = subprocess.Popen([str(HASS), "-c", str(self.dir), "--skip-pip"], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError("hass exited with %s: %s" % (self.proc.returncode, self.tail()))
            try:
                if self.call("GET", "/api/onboarding", auth=False)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError("hass did not answer within %.0f s: %s" % (timeout, self.tail()))

    def tail(self):
        try:
            return (self.dir / "hass.out").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.log.close()
        self.proc = None

    def call(self, method, path, body=None, auth=True, form=False):
        headers = {}
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = "Bearer " + self.token
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                if "json" not in r.headers.get("Content-Type", ""):
                    return r.status, raw.decode()   # /api/template answers text
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def onboard(self):
        """Create the owner through onboarding and get an access token."""
        cid = self.base + "/"
        st, doc = self.call("POST", "/api/onboarding/users", {"client_id": cid, "name": "Test", "username": "test",
                                                             "password": "test-pass-1234", "language": "en"}, auth=False)
        assert st == 200, (st, doc)
        st, tok = self.call("POST", "/auth/token", {"grant_type": "authorization_code", "code": doc["auth_code"],
                                                   "client_id": cid}, auth=False, form=True)
        assert st == 200, (st, tok)
        self.token = tok["access_token"]
        return self

    def add_mqtt(self, host, port):
        """The MQTT integration, through the config flow (what Settings > Integrations does)."""
        st, flow = self.call("POST", "/api/config/config_entries/flow", {"handler": "mqtt",
                                                                         "show_advanced_options": False})
        assert st == 200 and flow.get("step_id") == "broker", (st, flow)
        st, res = self.call("POST", "/api/config/config_entries/flow/" + flow["flow_id"],
                            {"broker": host, "port": port})
        assert st == 200 and res.get("type") == "create_entry", (st, res)
        return res

    def states(self) -> dict:
        st, doc = self.call("GET", "/api/states")
        assert st == 200, (st, doc)
        return {s["entity_id"]: s for s in doc}

    def template(self, text):
        st, out = self.call("POST", "/api/template", {"template": text})
        assert st == 200, (st, out)
        return out

    def wait(self, cond, timeout=30.0, what="condition"):
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            last = self.states()
            v = cond(last)
            if v:
                return last
            time.sleep(0.25)
        raise AssertionError("Home Assistant: %s not met within %.0f s; states: %s" % (
            what, timeout, json.dumps({k: v["state"] for k, v in (last or {}).items()
                                       if "consumables" in k or k.startswith(("sensor.", "binary_sensor.", "event."))},
                                      sort_keys=True)[:3000]))


def ci():
    return bool(os.environ.get("CI"))
