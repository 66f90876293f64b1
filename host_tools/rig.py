"""A complete rig: one board (virtual by default, or a real one on a serial port), the
firmware deployed with mpremote, and a bridge process forwarding to a jsonl uplink.

The demo, the HIL suite and the fault-injection harness all stand on this, so they
exercise exactly what a user runs: `consumables board`, `consumables deploy`,
`consumables bridge`. Everything lives in one work directory:

    WORK/flash/          the virtual board's flash filesystem
    WORK/board.pty       the board's serial port (a pty; or the real port)
    WORK/registry.json   device keys (0600), written by deploy
    WORK/bridge.sqlite   the bridge's durable store (+ .status.json)
    WORK/uplink.jsonl    what the supplier receives
    WORK/bridge.log      the bridge's structured log
"""
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from host_tools import deploy as deploy_mod
from host_tools.board import VirtualBoard, default_heap




class RigError(Exception):
    pass


class Rig:
    def __init__(self, work, board="virtual", port=None, device_id="toner-01", consent=4, speed=None,
                 seed=None, heap=None, key=None, log=None, bridge_args=(), baud=None):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.board_name = board
        self.real_port = port
        self.port = port or str(self.work / "board.pty")
        self.device_id = device_id
        self.consent = consent
        self.speed = speed
        self.seed = seed
        self.heap = heap or default_heap()   # host_tools/board.py: one default
        self.key = key or secrets.token_hex(32)
        self.log = log or (lambda *a: None)
        self.registry = self.work / "registry.json"
        self.db = self.work / "bridge.sqlite"
        self.uplink = self.work / "uplink.jsonl"
        self.bridge_log = self.work / "bridge.log"
        self.bridge_args = list(bridge_args)
        self.baud = baud          # the virtual board's line paced as a UART (None: a pty's speed)
        self.vboard = None
        self.bridge = None

    # ---- the parts -----------------------------------------------------------------
    def start_board(self):
        if self.real_port:
            return
        self.vboard = VirtualBoard(self.port, str(self.work / "flash"), heap=self.heap, speed=self.speed,
                                   seed=self.seed, baud=self.baud)
        self.vboard.start()
        self.log("virtual board on %s (heap %s, speed %s)" % (self.port, self.heap, self.speed))

    def deploy(self, **kw):
        res = deploy_mod.deploy(self.port, self.board_name, self.device_id, self.key, registry=str(self.registry),
                                consent=self.consent, log=kw.pop("log", self.log), **kw)
        return res

    def start_bridge(self, extra=()):
        if self.bridge and self.bridge.poll() is None:
            return
        cmd = [sys.executable, "-m", "host_tools.cli", "bridge", "--serial", self.port,
               "--uplink", "jsonl:%s" % self.uplink, "--registry", str(self.registry), "--db", str(self.db),
               "--print-every", "2"] + self.bridge_args + list(extra)
        self._blog = open(self.bridge_log, "ab")
        self.bridge = subprocess.Popen(cmd, stdout=self._blog, stderr=self._blog, cwd=str(self.work))
        self.log("bridge pid %d on %s" % (self.bridge.pid, self.port))

    def kill_bridge(self, sig=signal.SIGKILL):
        if self.bridge and self.bridge.poll() is None:
            self.bridge.send_signal(sig)
            self.bridge.wait(10)
        self.bridge = None

    def start(self, deploy=True):
        self.start_board()
        if deploy:
            self.deploy()
        self.start_bridge()
        return self

    def stop(self):
        self.kill_bridge(signal.SIGTERM)
        if self.vboard:
            self.vboard.stop()
            self.vboard = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- the world and the board ----------------------------------------------------
    def world(self, line):
        """A command for the simulated world: button, refill [Q], level Q, rate R, speed S."""
        if not self.vboard:
            raise RigError("world commands need the virtual board")
        answer = self.vboard.command(line)
        if not answer.startswith("ok"):
            raise RigError("world command %r: %s" % (line, answer))
        return answer

    def power_cut(self, delay=0.0):
        if not self.vboard:
            raise RigError("power cuts need the virtual board")
        self.vboard.power_cut(delay)

    def dropped_on_device(self):
        """The outbox's own count of messages dropped by policy (its d<N> marker file,
        firmware/outbox.py), read from the virtual board's flash; None on a real board."""
        if not self.vboard:
            return None
        d = self.work / "flash" / "outbox"
        n = [int(p.name[1:]) for p in d.glob("d*") if p.name[1:].isdigit()] if d.is_dir() else []
        return max(n) if n else 0

    def send(self, *args):
        from host_tools.send import main_send
        return main_send([self.device_id] + [str(a) for a in args] + ["--db", str(self.db),
                                                                       "--registry", str(self.registry)])

    # ---- what the supplier got ------------------------------------------------------
    def messages(self):
        out = []
        try:
            with open(self.uplink) as f:
                for line in f:
                    line = line.strip()
                    if line:
                        try:
                            out.append(json.loads(line))
                        except ValueError:
                            pass  # a line being written right now
        except FileNotFoundError:
            pass
        return out

    def wait_for(self, pred, timeout=60, what="condition"):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            msgs = self.messages()
            got = pred(msgs)
            if got:
                return got
            if self.bridge and self.bridge.poll() is not None:
                raise RigError("bridge exited with %s; see %s" % (self.bridge.returncode, self.bridge_log))
            time.sleep(0.2)
        raise RigError("timed out after %ss waiting for %s" % (timeout, what))

    def status(self):
        try:
            with open(str(self.db) + ".status.json") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}


def events(msgs, kind):
    return [m for m in msgs if m.get("type") == "event" and m.get("kind_name") == kind]
