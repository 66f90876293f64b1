"""The virtual board: the MicroPython unix port behind a pseudo-terminal.

mpremote (or any serial tool) opens PTY_PATH exactly as it would open a USB board.
A relay thread copies bytes between that outer pty and an inner pty on which the
unix port runs, and makes the process behave like a bare-metal port:

* Boot: the port runs a small boot script (``_vboot.py``, outside the flash dir)
  that mounts the flash directory as ``/`` (so ``open('/main.py')`` stays inside
  it), then runs ``boot.py`` and ``main.py`` with ``execfile`` and falls into the
  REPL (``micropython -i``).
* Soft reset: Ctrl-D makes the unix port exit with code 0.  The relay prints
  ``MPY: soft reboot`` and starts a new process.  If the port was in the raw
  REPL (seen ``raw REPL; CTRL-B to exit``, not left with Ctrl-B) the new process
  skips ``main.py`` and the relay sends Ctrl-A to it, as a board comes back.
* Hard reset: ``machine.reset()`` exits with code 117 (EXIT_HARD_RESET); the
  process restarts with boot.py + main.py.  ``machine.deepsleep()`` exits with
  118 (EXIT_DEEPSLEEP) and the process restarts at once running main.py.
  ``machine`` here is a shim module placed next to ``_vboot.py``: ``machine`` is an
  *extensible* built-in in MicroPython >= 1.21, so a ``machine.py`` on sys.path
  wins and can re-export the built-in with ``from umachine import *``.  The shim
  is imported before ``/`` is remounted, so it stays cached for the whole boot
  and never appears on the board's filesystem.
* ``machine.reset_cause()`` returns PWRON_RESET / HARD_RESET / WDT_RESET /
  DEEPSLEEP_RESET / SOFT_RESET (ESP32 values), taken from $VBOARD_RESET_CAUSE.
* Control: ``power_cut()``, ``reset()``, ``command(line)`` in Python, or the same
  line commands on the optional Unix socket ``--ctl PATH`` (one command per
  connection, answer ``ok ...`` / ``error ...``).  World commands (``button``,
  ``refill``) are appended as lines to ``FLASH/ctl`` for the simulated world.
* Ctrl-C: a 0x03 from the host is a KeyboardInterrupt only while the port's interrupt
  char is Ctrl-C, and data after ``micropython.kbd_intr(-1)``, as a board's UART ISR
  decides (``_pump``). ``baud=`` paces the line as a UART at that rate (``_Wire``).
* ``FLASH/sim.json`` gets ``{"speed": X, "seed": N, "state": "world.bin"}`` before
  the first boot, for the firmware's simulated world; ``FLASH/world.bin`` keeps the world
  (level, clock anchored to the host's wall clock) across power cuts, so a reboot resumes
  it instead of starting a fresh, full consumable. ``flash N`` (a world command) leaves
  N free bytes on the emulated flash: writes beyond fail with ENOSPC.
"""
import argparse
import errno
import json
import os
import queue
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
import fcntl

EXIT_HARD_RESET = 117
EXIT_DEEPSLEEP = 118

# The heap the firmware needs on the 64-bit `micropython` binary (~92 KB for the agent,
# tests/benchmarks/bench_memory.py) plus the REPL, the control file and mpremote's
# raw-paste transfers. One place: `consumables board`, the demo, the HIL rigs and
# README use it; $CONSUMABLES_HEAP overrides it. (A 32-bit ESP32 without PSRAM runs the
# agent in 64 KB: tests/host/test_memory32.py.)
DEFAULT_HEAP = "192K"


def default_heap():
    return os.environ.get("CONSUMABLES_HEAP") or DEFAULT_HEAP

# machine.reset_cause() values, as on the ESP32 port.
PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5

# commands for the simulated world (firmware/sensors/simctl.py), passed through the ctl file
WORLD_COMMANDS = ("button", "refill", "level", "rate", "speed", "advance", "noise", "spike", "dropout",
                  "flash", "sensor")
RAW_BANNER = b"raw REPL; CTRL-B to exit"
BOOT_MARK = b"; virtual board "  # printed by _vboot.py once Python code runs
PROMPT = b">>> "
OUT_LIMIT = 64 * 1024  # bytes kept for a reader that is not there; older ones are dropped
SETTLE_S = 2.0  # after a Ctrl-C: how long input waits for the REPL (agent cycles under load)

BOOT_SCRIPT = r"""
import os, sys
import machine, network   # the shims, cached before / is remounted
try:
    _d = os.getcwd()
    os.umount('/')
    os.mount(os.VfsPosix(_d), '/')
    os.chdir('/')
    sys.path[:] = ['', '.frozen', '/lib']
    del _d
    def _vboot_run(f):
        try:
            os.stat(f)
        except OSError:
            return
        execfile(f)
    print('MicroPython v%d.%d.%d; virtual board %s with heap %s' % (sys.implementation.version[:3]
          + (os.getenv('VBOARD_NAME'), os.getenv('VBOARD_HEAP'))))
    _vboot_run('boot.py')
    if os.getenv('VBOARD_RUN_MAIN') == '1':
        _vboot_run('main.py')
finally:
    try:
        del _vboot_run
    except NameError:
        pass
    del os, sys, machine, network
"""

MACHINE_SHIM = r"""
# Virtual board: extends the unix port's built-in machine module with what an ESP32's
# has (ports/esp32/modmachine.c, machine_rtc.c, machine_wdt.c) and behaves like one.
from umachine import *
import os as _os, sys as _sys

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
# machine.wake_reason(): ESP-IDF's esp_sleep_source_t, as the ESP32 port returns it
PIN_WAKE = EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4

# The relay's state directory, outside the board's filesystem (the boot script mounts the
# flash directory as /): reached through a VfsPosix object of its own, never mounted.
_state = _os.VfsPosix(_os.getenv('VBOARD_STATE') or '.')
_RTC_MAX = 2048   # MICROPY_HW_RTC_USER_MEM_MAX on the ESP32 port


def _read(name, default=b''):
    try:
        with _state.open('/' + name, 'rb') as f:
            return f.read()
    except OSError:
        return default


def _write(name, data):
    with _state.open('/' + name, 'wb') as f:
        f.write(data)


def _exit(code):
    # `micropython -i` falls into its REPL after a SystemExit from main.py (a raw-REPL
    # exec exits): the file 'exit' tells the relay to end the process either way
    _write('exit', str(code).encode())
    _sys.exit(code)

def reset():
    _exit(117)

def deepsleep(ms=0, wake=TIMER_WAKE):
    # RAM is lost: the process ends and the relay starts a new one (DEEPSLEEP_RESET).
    # (`wake` is the virtual board's: firmware/hal_sim.py slept the time and says why it woke.)
    _write('wake', str(wake).encode())
    _exit(118)

def lightsleep(ms=0):
    import time
    time.sleep_ms(ms)

def reset_cause():
    return int(_os.getenv('VBOARD_RESET_CAUSE') or 1)

def wake_reason():
    if reset_cause() != DEEPSLEEP_RESET:
        return 0
    return int(_read('wake', b'4'))

def unique_id():
    return (_os.getenv('VBOARD_NAME') or 'vboard').encode()

def freq(*a):
    return 240000000

def bootloader(*a):
    _exit(117)


class RTC:
    # RTC slow memory: kept through deep sleep and resets, lost at power-on (the relay
    # deletes the file then)
    def memory(self, data=None):
        if data is None:
            return _read('rtcmem')
        if len(data) > _RTC_MAX:
            raise ValueError('buffer too long')
        _write('rtcmem', bytes(data))


class WDT:
    # The task watchdog: once started it cannot be stopped, and it outlives a soft reset
    # (Ctrl-D) and a KeyboardInterrupt into the REPL; only a hard reset, deep sleep or a
    # power-on ends it. Each feed rewrites the state file 'wdt' (at most once a second);
    # the relay resets the board with WDT_RESET when the file is older than the timeout.
    def __init__(self, id=0, timeout=5000):
        import time
        self._t = time
        self._ms = timeout
        self._last = None
        self.feed()

    def feed(self):
        now = self._t.ticks_ms()
        if self._last is None or self._t.ticks_diff(now, self._last) >= 1000:
            self._last = now
            _write('wdt', str(self._ms).encode())
"""


NETWORK_SHIM = r"""
# Virtual board: network.WLAN as an ESP32's station interface behaves. connect() starts a
# join that takes join_ms (an ESP32 needs 1-4 s for association and DHCP) and fails when
# the access point is 'down'; the link drops when the host says so ('consumables board'
# world command: wifi down|up|slow MS). State: the relay's file 'wifi' (up|down, join ms).
import time as _t
import os as _os

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202

_state = _os.VfsPosix(_os.getenv('VBOARD_STATE') or '.')


def _ap():
    try:
        with _state.open('/wifi', 'r') as f:
            w = f.read().split()
    except OSError:
        w = []
    return (w[0] if w else 'up'), (int(w[1]) if len(w) > 1 else 2000)


class WLAN:
    def __init__(self, i=STA_IF):
        self._on = False
        self._since = None
        self._status = STAT_IDLE

    def active(self, on=None):
        if on is None:
            return self._on
        self._on = bool(on)
        if not on:
            self._since = None
            self._status = STAT_IDLE

    def connect(self, ssid=None, key=None, **kw):
        if not self._on:
            raise OSError('Wifi Not Started')
        self._since = _t.ticks_ms()
        self._status = STAT_CONNECTING

    def disconnect(self):
        self._since = None
        self._status = STAT_IDLE

    def status(self, *a):
        if self._since is not None:
            up, join = _ap()
            if up != 'up':
                self._since = None
                self._status = STAT_NO_AP_FOUND
            elif _t.ticks_diff(_t.ticks_ms(), self._since) >= join:
                self._status = STAT_GOT_IP
        return self._status

    def isconnected(self):
        return self.status() == STAT_GOT_IP

    def ifconfig(self, *a):
        return ('127.0.0.1', '255.0.0.0', '127.0.0.1', '127.0.0.1')
"""


def micropython_bin():
    """The unix port: $MICROPYTHON, else `micropython` on PATH, else next to sys.executable."""
    env = os.environ.get("MICROPYTHON")
    if env:
        return env
    found = shutil.which("micropython")
    if found:
        return found
    cand = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(cand):
        return cand
    raise RuntimeError("MicroPython unix port not found: set $MICROPYTHON (see README)")


def _set_inner_termios(fd):
    """Raw (no OPOST, no echo, no canon, no ISIG).

    The kernel must not turn every 0x03 byte into SIGINT: after micropython.kbd_intr(-1)
    a board takes it as data (downlink frames carry 0x03 among their bytes). The relay
    sends SIGINT itself, only while the port's interrupt char is Ctrl-C (see _pump).
    """
    attrs = termios.tcgetattr(fd)
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = attrs
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
               | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.IEXTEN | termios.ISIG)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    cc = list(cc)
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    cc[termios.VINTR] = 3
    # Only Ctrl-C is a signal; Ctrl-\ and Ctrl-Z would kill or stop the port.
    cc[termios.VQUIT] = 0
    cc[termios.VSUSP] = 0
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])


def _controlling_tty():
    # In the child: new session with the inner pty (fd 0) as controlling terminal,
    # so the kernel turns a Ctrl-C byte into SIGINT for the port.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _Wire:
    """One direction of a UART at `baud`, 8N1 (10 bits a byte): bytes pass no faster than
    baud / 10 per second, and an idle line saves up no more than 10 ms of them."""

    def __init__(self, baud):
        self.rate = baud / 10.0
        self.cap = max(1.0, self.rate * 0.01)
        self.tokens, self.t = 0.0, time.monotonic()

    def allow(self, want):
        now = time.monotonic()
        self.tokens = min(self.cap, self.tokens + (now - self.t) * self.rate)
        self.t = now
        n = min(want, int(self.tokens))
        self.tokens -= n
        return n


class VirtualBoard:
    """One virtual board: ``with VirtualBoard(pty, flash) as b: ...``."""

    def __init__(self, pty_path, flash_dir, heap=None, speed=None, seed=None,
                 ctl_path=None, micropython=None, name=None, on_crash=None, baud=None):
        self.pty_path = os.path.abspath(pty_path)
        # baud: the serial line's rate both ways (a USB-UART bridge's 115200); None: a pty's
        self.baud = baud
        self._wire_up = _Wire(baud) if baud else None     # board -> host
        self._wire_down = _Wire(baud) if baud else None   # host -> board
        self._line_in = bytearray()  # from the host, not yet through the wire
        # on_crash(text): main.py died with a traceback (not a host's Ctrl-C); the board's
        # serial line is the bridge's, so `consumables board` prints it where the user looks
        self.on_crash = on_crash
        self.crashes = []
        self._console = b""       # main.py's output since the boot, its last 4 KB
        self.flash_dir = os.path.abspath(flash_dir)
        self.heap = heap or default_heap()
        self.speed = speed
        self.seed = seed
        self.ctl_path = os.path.abspath(ctl_path) if ctl_path else None
        self.micropython = micropython or micropython_bin()
        self.name = name or os.path.basename(self.pty_path)
        self.boots = 0              # boots the firmware sees (power-on, resets, wake-ups)
        self.raw = False            # the port is in the raw REPL (tracked from the stream)
        self._proc = None
        self._inner = None          # master fd of the inner pty
        self._master = self._slave = None
        self._thread = None
        self._stop = threading.Event()
        self._ready = threading.Event()  # a prompt was seen since the last boot
        self._wake_r, self._wake_w = os.pipe()
        self._cmds = queue.Queue()
        self._out = bytearray()      # to the outer pty
        self._tail = b""             # last bytes of output, for pattern matching
        # Input to the port is held while it cannot take it safely (see _pump):
        # "off" (no process), "booting" (SIGINT would kill it), "running"
        # (main.py: bytes pass, e.g. for a serial transport), "interrupted"
        # (after a SIGINT: the REPL is coming, hold until its prompt), "settling"
        # (main.py read a "\r\x03" itself: hold until a prompt or SETTLE_S), "ready".
        self._phase = "off"
        self._last_in = 0
        self._settle_until = 0.0     # "settling": see _pump
        self._sigint_at, self._answered_since_sigint = 0.0, True
        self._pending = bytearray()
        self._unanswered = bytearray()  # written to the port since its last output
        self._boot_at = None         # time of a pending (delayed) boot
        self._boot_cause = PWRON_RESET
        self._sock = None
        self._tmp = None
        self._state = None
        self.wdt_resets = 0          # (the watchdog: the state file 'wdt', see MACHINE_SHIM)
        self.wifi_join_ms = 2000     # network.WLAN's join time (NETWORK_SHIM)
        self._wdt_next = 0.0

    # ---- life cycle -------------------------------------------------------
    def start(self, wait=True, timeout=10):
        os.makedirs(self.flash_dir, exist_ok=True)
        self._write_sim_json()
        self._tmp = tempfile.mkdtemp(prefix="vboard-")
        with open(os.path.join(self._tmp, "_vboot.py"), "w") as f:
            f.write(BOOT_SCRIPT)
        with open(os.path.join(self._tmp, "machine.py"), "w") as f:
            f.write(MACHINE_SHIM)
        with open(os.path.join(self._tmp, "network.py"), "w") as f:
            f.write(NETWORK_SHIM)
        self._state = os.path.join(self._tmp, "state")   # RTC memory, wake reason, WDT fifo
        os.makedirs(self._state)
        self._master, self._slave = os.openpty()
        # The relay keeps the slave open so reads never hit EIO between clients.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        if os.path.islink(self.pty_path):
            os.unlink(self.pty_path)
        os.symlink(os.ttyname(self._slave), self.pty_path)
        if self.ctl_path:
            if os.path.exists(self.ctl_path):
                os.unlink(self.ctl_path)
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.bind(self.ctl_path)
            self._sock.listen(4)
        self._power_on()
        self._spawn(PWRON_RESET, run_main=True)
        self._thread = threading.Thread(target=self._loop, name="vboard-" + self.name, daemon=True)
        self._thread.start()
        if wait:
            self.wait_ready(timeout)
        return self

    def stop(self):
        if self._thread is None:
            return
        self._stop.set()
        self._wake()
        self._thread.join(5)
        self._thread = None
        self._kill()
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except (OSError, TypeError):
                pass
        if os.path.islink(self.pty_path):
            os.unlink(self.pty_path)
        if self._sock:
            self._sock.close()
            if os.path.exists(self.ctl_path):
                os.unlink(self.ctl_path)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_ready(self, timeout=10):
        """Wait until the port shows a prompt (main.py finished or was interrupted)."""
        return self._ready.wait(timeout)

    # ---- control ----------------------------------------------------------
    def power_cut(self, delay=0.0):
        return self.command("powercut %s" % delay)

    def reset(self):
        return self.command("reset")

    def command(self, line, timeout=10):
        """Run one control line in the relay thread; returns its answer."""
        done = threading.Event()
        box = []
        self._cmds.put((line, done, box))
        self._wake()
        if not done.wait(timeout):
            return "error timeout"
        return box[0]

    def _do_command(self, line):
        words = line.split()
        if not words:
            return "error empty command"
        cmd = words[0].lower()
        if cmd == "powercut":
            delay = float(words[1]) if len(words) > 1 else 0.0
            self._kill()
            self.raw = False
            self._power_on()
            self._boot_at = time.monotonic() + delay
            self._boot_cause = PWRON_RESET
            return "ok powercut"
        if cmd == "reset":
            self._kill()
            self._hard_reset(HARD_RESET)
            return "ok reset"
        if cmd == "wifi":   # the access point: up | down | slow MS (join time)
            up, join = "up", self.wifi_join_ms
            if len(words) > 1 and words[1] in ("up", "down"):
                up = words[1]
            elif len(words) > 2 and words[1] == "slow":
                join = self.wifi_join_ms = int(words[2])
            else:
                return "error usage: wifi up|down|slow MS"
            with open(os.path.join(self._state, "wifi"), "w") as f:
                f.write("%s %d" % (up, join))
            return "ok wifi %s %d" % (up, join)
        if cmd in WORLD_COMMANDS:
            with open(os.path.join(self.flash_dir, "ctl"), "a") as f:
                f.write(" ".join(words) + "\n")
            return "ok " + cmd
        if cmd == "status":
            pid = self._proc.pid if self._proc else 0
            return "ok pid=%d boots=%d raw=%d wdt_resets=%d" % (pid, self.boots, self.raw, self.wdt_resets)
        return "error unknown command: " + cmd

    # ---- process ----------------------------------------------------------
    def _write_sim_json(self):
        sim = {"state": "world.bin"}
        if self.speed is not None:
            sim["speed"] = self.speed
        if self.seed is not None:
            sim["seed"] = self.seed
        with open(os.path.join(self.flash_dir, "sim.json"), "w") as f:
            json.dump(sim, f)

    def _power_on(self):
        """What a power-on reset clears: RTC memory, the wake reason, the watchdog."""
        for name in ("rtcmem", "wake", "wdt", "exit"):
            self._unlink(name)

    def _unlink(self, name):
        try:
            os.unlink(os.path.join(self._state, name))
        except FileNotFoundError:
            pass

    def _spawn(self, cause, run_main, counted=True):
        if cause in (PWRON_RESET, HARD_RESET, DEEPSLEEP_RESET, WDT_RESET):
            # the task watchdog is off again after these (the firmware starts it anew);
            # a soft reset and a Ctrl-C into the REPL leave it running
            self._unlink("wdt")
        master, slave = os.openpty()
        _set_inner_termios(slave)
        env = dict(os.environ, MICROPYPATH=self._tmp, VBOARD_RESET_CAUSE=str(cause),
                   VBOARD_RUN_MAIN="1" if run_main else "0", VBOARD_NAME=self.name,
                   VBOARD_HEAP=self.heap, VBOARD_STATE=self._state)
        self._proc = subprocess.Popen(
            [self.micropython, "-X", "heapsize=" + self.heap, "-i", os.path.join(self._tmp, "_vboot.py")],
            stdin=slave, stdout=slave, stderr=slave, cwd=self.flash_dir, env=env,
            preexec_fn=_controlling_tty, close_fds=True)
        os.close(slave)
        os.set_blocking(master, False)
        self._inner = master
        self._tail = b""
        self._console = b""
        self._ready.clear()
        self._phase = "booting"
        self._last_in = 0
        if counted:  # boots the firmware could see; a quiet respawn is not one
            self.boots += 1
        self._cause = cause
        self._boot_at = None

    def _kill(self):
        if self._proc is not None:
            try:
                self._proc.kill()
            except ProcessLookupError:
                pass
            self._proc.wait()
            self._proc = None
        if self._inner is not None:
            os.close(self._inner)
            self._inner = None
        self._ready.clear()
        self._phase = "off"

    def _hard_reset(self, cause):
        self.raw = False
        self._emit(b"\r\nrst: virtual board reset (cause %d)\r\n" % cause)
        self._spawn(cause, run_main=True)

    def _crashed(self):
        c = self._console
        text = c[c.rfind(b"Traceback (most recent call last)"):].split(PROMPT)[0]
        text = text.decode(errors="replace").replace("\r", "")
        text = text.split("\nMicroPython ")[0].strip()   # the REPL's banner after it
        if text.splitlines()[-1].startswith("KeyboardInterrupt"):
            return   # a Ctrl-C main.py obeyed itself (kbd_intr off) is not a crash
        self.crashes.append(text)
        if self.on_crash:
            try:
                self.on_crash(text)
            except Exception:   # a reporting hook must not stop the relay
                pass

    def _exit_asked(self):
        """machine.reset()/deepsleep() from main.py: end the process as the shim asked."""
        path = os.path.join(self._state, "exit")
        try:
            with open(path) as f:
                code = int(f.read())
        except (OSError, ValueError):
            return False
        os.unlink(path)
        self._proc.kill()
        self._proc.wait()
        self._process_exited(code)
        return True

    def _process_exited(self, code=None):
        if code is None:
            code = self._proc.wait()
        self._unlink("exit")     # a raw-REPL exec exits by itself: the file is done with
        self._proc = None
        os.close(self._inner)
        self._inner = None
        self._phase = "off"
        if code in (EXIT_HARD_RESET, EXIT_DEEPSLEEP, -signal.SIGINT):
            # Bytes the dying process never answered (e.g. mpremote's Ctrl-C, Ctrl-A
            # right after `reset`) go to the new one instead of being lost.
            self._pending[:0] = self._unanswered
        self._unanswered = bytearray()
        if code == 0:  # Ctrl-D: soft reset, as a board does it
            self._emit(b"MPY: soft reboot\r\n")
            if self.raw:  # a board comes back in the raw REPL: ask the new process for it
                self._pending[:0] = b"\x01"
            self._spawn(SOFT_RESET, run_main=not self.raw)
        elif code == -signal.SIGINT:
            # Ctrl-C landed between two executions, where the unix port leaves SIGINT
            # at its default; a board would just show the REPL, so come back quietly.
            if self.raw:
                self._pending[:0] = b"\x01"
            self._spawn(self._cause, run_main=False, counted=False)  # not a reset the firmware sees
        elif code == EXIT_DEEPSLEEP:
            self.raw = False
            self._spawn(DEEPSLEEP_RESET, run_main=True)
        elif code == EXIT_HARD_RESET:
            self._hard_reset(HARD_RESET)
        else:  # crashed: a watchdog would reboot a real board
            self.raw = False
            self._emit(b"\r\nvirtual board: port exited with %d, rebooting\r\n" % code)
            self._boot_at = time.monotonic() + 0.2
            self._boot_cause = WDT_RESET

    # ---- relay ------------------------------------------------------------
    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _emit(self, data):
        self._out += data
        if len(self._out) > OUT_LIMIT:  # nobody reads: drop the oldest, as a UART would
            del self._out[:len(self._out) - OUT_LIMIT]

    def _from_port(self, data):
        self._emit(data)
        self._unanswered.clear()
        self._answered_since_sigint = True
        if self._phase in ("booting", "running"):
            self._console = (self._console + data)[-4096:]
        scan = self._tail + data
        if RAW_BANNER in scan:
            self.raw = True
        if PROMPT in scan and self._exit_asked():
            return
        if PROMPT in scan or RAW_BANNER in scan:
            if self._phase in ("booting", "running") and b"Traceback (most recent call last)" in self._console:
                self._crashed()
            self._console = b""
            self._ready.set()
            self._phase = "ready"
        elif self._phase == "booting" and BOOT_MARK in scan:
            self._phase = "running"
        self._tail = scan[-32:]
        self._pump()

    def _to_port(self, data):
        if b"\x02" in data:  # Ctrl-B leaves the raw REPL
            self.raw = False
        self._pending += data
        if len(self._pending) > OUT_LIMIT:
            del self._pending[:len(self._pending) - OUT_LIMIT]
        self._pump()

    def _pump(self):
        # A board's UART keeps what arrives while it boots; the unix port would die of
        # a SIGINT before its handler is set, and its REPL flushes input (TCSAFLUSH) each
        # time it switches the tty mode.
        if self._inner is None or self._phase in ("off", "booting"):
            return
        if self._phase == "settling" and time.monotonic() >= self._settle_until:
            self._phase = "running"   # the program kept the Ctrl-C as data and goes on
        if self._phase not in ("running", "ready"):
            return
        out = bytearray()
        while self._pending:
            i = self._pending.find(3)
            if i < 0:
                out += self._pending
                self._pending = bytearray()
                break
            out += self._pending[:i]
            prev = self._pending[i - 1] if i else self._last_in
            del self._pending[:i + 1]
            self._last_in = 3
            if self._interrupt_char_is_ctrl_c():
                # The ISR's rule: the byte is not data, it raises KeyboardInterrupt.
                self._write_port(out)
                out = bytearray()
                self._interrupt()
                if self._phase == "interrupted":
                    return
                continue
            out.append(3)   # kbd_intr(-1): data for the program, as in a board's ring buffer
            if self._phase == "running" and prev == 13:
                # "\r\x03" is what mpremote sends and firmware/transport_serial.py obeys:
                # if main.py ends on it the unix REPL's TCSAFLUSH would drop what follows
                # (mpremote's Ctrl-A), which a board keeps: hold the rest until a prompt
                # shows or the program shows it kept running.
                self._write_port(out)
                self._phase = "settling"
                self._settle_until = time.monotonic() + SETTLE_S
                return
        if out:   # (the loop ends with all of the pending input taken)
            self._last_in = out[-1]
        self._write_port(out)

    def _write_port(self, out):
        if out:
            try:
                os.write(self._inner, bytes(out))
                self._unanswered += out
            except OSError:
                pass

    def _interrupt(self):
        now = time.monotonic()
        if now - self._sigint_at < SETTLE_S and not self._answered_since_sigint:
            return   # one KeyboardInterrupt is already pending: a board raises it once
        self._sigint_at, self._answered_since_sigint = now, False
        if self._phase == "running":
            self._phase = "interrupted"   # main.py is ending: hold input until the REPL
        try:
            os.kill(self._proc.pid, signal.SIGINT)
        except (OSError, AttributeError):
            pass

    def _interrupt_char_is_ctrl_c(self):
        """micropython.kbd_intr's state, read from the port: the unix port installs its
        SIGINT handler for Ctrl-C and restores SIG_DFL for -1 (ports/unix/unix_mphal.c,
        mp_hal_set_interrupt_char), and pyexec sets Ctrl-C only while code runs
        (shared/runtime/pyexec.c). A bare-metal port's UART ISR compares each byte with
        that char the same way (shared/runtime/interrupt_char.c). Linux shows the
        handler as bit SIGINT-1 of SigCgt in /proc/PID/status."""
        try:
            with open("/proc/%d/status" % self._proc.pid) as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
        except (OSError, ValueError, AttributeError):
            pass
        return False

    def _wdt_check(self):
        now = time.monotonic()
        if now < self._wdt_next:
            return
        self._wdt_next = now + 0.25
        try:
            st = os.stat(os.path.join(self._state, "wdt"))
            with open(os.path.join(self._state, "wdt")) as f:
                ms = int(f.read() or 0)
        except (OSError, ValueError):
            return
        if ms and self._inner is not None and time.time() - st.st_mtime > ms / 1000 + 1:
            self._wdt_ms = ms
            self._wdt_bite()

    def _wdt_bite(self):
        self.wdt_resets += 1
        self._unlink("wdt")
        self._kill()
        self.raw = False
        self._emit(b"\r\nrst: watchdog reset (not fed for %d ms)\r\n" % self._wdt_ms)
        self._spawn(WDT_RESET, run_main=True)

    def _serve_ctl(self):
        conn, _ = self._sock.accept()
        conn.settimeout(2)
        try:
            buf = b""
            while b"\n" not in buf:
                chunk = conn.recv(256)
                if not chunk:
                    break
                buf += chunk
            answer = self._do_command(buf.decode(errors="replace").strip())
            conn.sendall(answer.encode() + b"\n")
        except OSError:
            pass
        finally:
            conn.close()

    def _loop(self):
        while not self._stop.is_set():
            rlist = [self._master, self._wake_r]
            if self._inner is not None:
                rlist.append(self._inner)
            if self._sock:
                rlist.append(self._sock)
            wlist = [self._master] if self._out else []
            timeout = 0.5
            if self._boot_at is not None:
                timeout = max(0.0, min(timeout, self._boot_at - time.monotonic()))
            if self._phase == "settling":
                timeout = max(0.0, min(timeout, self._settle_until - time.monotonic()))
            if self.baud and (self._line_in or self._out):
                timeout = min(timeout, 0.002)   # the wire's next bytes
                wlist = []                      # paced by the wire, not the pty
            if self.baud and len(self._out) > 1024 and self._inner in rlist:
                # a UART's TX blocks the writer when its buffer is full (uart_write_bytes):
                # leave the port's output in its pty until the wire has room
                rlist.remove(self._inner)
            r, w, _ = select.select(rlist, wlist, [], timeout)
            if self._wake_r in r:
                os.read(self._wake_r, 512)
            while not self._cmds.empty():
                line, done, box = self._cmds.get()
                try:
                    box.append(self._do_command(line))
                except Exception as e:  # a bad command must not kill the relay
                    box.append("error %s" % e)
                done.set()
            if self._inner is not None and self._inner in r:
                try:
                    data = os.read(self._inner, 4096)
                except OSError as e:
                    data = b"" if e.errno == errno.EIO else None
                if data:
                    self._from_port(data)
                elif data == b"":
                    self._process_exited()
            if self._master in r:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                if data and self.baud:
                    self._line_in += data
                elif data:
                    self._to_port(data)
            if self._line_in:
                n = self._wire_down.allow(len(self._line_in))
                if n:
                    data, self._line_in = bytes(self._line_in[:n]), self._line_in[n:]
                    self._to_port(data)
            if self._out and (self._master in w or self.baud):
                n = self._wire_up.allow(4096) if self.baud else 4096
                try:
                    if n:
                        n = os.write(self._master, bytes(self._out[:n]))
                        del self._out[:n]
                except BlockingIOError:
                    if self.baud:   # the bits went out; nobody on the host side read them
                        del self._out[:n]
                except OSError:
                    self._out.clear()
            if self._phase == "settling":
                self._pump()
            self._wdt_check()
            if self._sock and self._sock in r:
                self._serve_ctl()
            if self._boot_at is not None and time.monotonic() >= self._boot_at and self._inner is None:
                self._spawn(self._boot_cause, run_main=True)


def send_ctl(path, line, timeout=5):
    """Send one command to a board's --ctl socket; returns the answer line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(line.strip().encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            buf += chunk
    return buf.decode().strip()


def main_board(argv=None):
    p = argparse.ArgumentParser(prog="consumables board", description="Run a virtual board on a pty.")
    p.add_argument("--pty", required=True, help="symlink to create for the board's serial port")
    p.add_argument("--flash", required=True, help="directory holding the board's filesystem")
    p.add_argument("--heap", default=None,
                   help="MicroPython heap size (default %s, what the firmware needs on the 64-bit "
                        "unix port; $CONSUMABLES_HEAP overrides)" % DEFAULT_HEAP)
    p.add_argument("--speed", type=float, help="simulation speed, written to FLASH/sim.json")
    p.add_argument("--seed", type=int, help="simulation seed, written to FLASH/sim.json")
    p.add_argument("--ctl", help="Unix socket for control commands (powercut, reset, button, refill)")
    p.add_argument("--baud", type=int, help="pace the serial line as a UART at this rate (e.g. 115200); "
                                            "default: as fast as the pty goes")
    a = p.parse_args(argv)
    if a.baud is not None and not 300 <= a.baud <= 4000000:
        p.error("--baud must be 300..4000000")
    if a.heap is not None and not re.fullmatch(r"[1-9][0-9]*[KkMm]?", a.heap):
        p.error("--heap must be a size such as 192K or 1M")
    try:
        def crash(text):
            print("virtual board: main.py stopped with an error; the board sits in its REPL "
                  "(reset it, or fix and deploy again):\n%s" % text, file=sys.stderr, flush=True)
        board = VirtualBoard(a.pty, a.flash, heap=a.heap, speed=a.speed, seed=a.seed, ctl_path=a.ctl,
                             on_crash=crash, baud=a.baud)
        board.start(wait=False)
    except OSError as e:
        print("consumables board: error: %s: %s" % (e.strerror or e, e.filename2 or e.filename or a.pty),
              file=sys.stderr)
        return 2
    except RuntimeError as e:
        print("consumables board: error: %s" % e, file=sys.stderr)
        return 2
    # A plain flag, not a threading.Event: the handler runs in the main thread between two
    # bytecodes, and Event.set() there can wait forever on the lock that the interrupted
    # Event.wait() holds (the monitor's Ctrl-C hang, host_tools/monitor.py)
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    print("virtual board ready: %s" % board.pty_path, flush=True)
    try:
        while not stop:
            if board._thread is None or not board._thread.is_alive():
                break
            time.sleep(0.1)
    finally:
        board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main_board())
