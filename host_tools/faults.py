"""Fault injection for the serial line between a board and the bridge.

NoisyLine relays bytes between the board's port (a pty or a real serial device) and
a new pty whose slave is symlinked at LINK_PATH; the bridge opens LINK_PATH instead
of the board's port. In both directions each byte, with probability
BYTE_ERROR_RATE, suffers one fault: a flipped bit, a drop, or a duplicate.

    line = NoisyLine("work/board.pty", "work/noisy.pty", 1e-2, seed=1).start()
    ...  # bridge --serial work/noisy.pty
    line.stop(); print(line.counters)
"""
import os
import random
import select
import threading
import time
import tty


class NoisyLine:
    def __init__(self, board_port, link_path, byte_error_rate, seed=0):
        self.board_port = board_port
        self.link_path = os.path.abspath(link_path)
        self.rate = float(byte_error_rate)
        self.rng = random.Random(seed)
        self.counters = {"flip": 0, "drop": 0, "dup": 0, "bytes_up": 0, "bytes_down": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._board = self._master = self._slave = None

    @property
    def injected(self):
        c = self.counters
        return c["flip"] + c["drop"] + c["dup"]

    def start(self):
        self._board = os.open(self.board_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(self._board)
        except Exception:
            pass
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # kept open so the master never reads EIO between clients
        os.set_blocking(self._master, False)
        if os.path.islink(self.link_path) or os.path.exists(self.link_path):
            os.unlink(self.link_path)
        os.symlink(os.ttyname(self._slave), self.link_path)
        self._thread = threading.Thread(target=self._loop, name="noisyline", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(3)
            self._thread = None
        for fd in (self._board, self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._board = self._master = self._slave = None
        if os.path.islink(self.link_path):
            os.unlink(self.link_path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def corrupt(self, data):
        """DATA with faults applied at the configured per-byte rate."""
        if self.rate <= 0:
            return data
        out = bytearray()
        rng = self.rng
        for b in data:
            if rng.random() >= self.rate:
                out.append(b)
                continue
            kind = rng.randrange(3)
            with self._lock:
                if kind == 0:
                    self.counters["flip"] += 1
                    out.append(b ^ (1 << rng.randrange(8)))
                elif kind == 1:
                    self.counters["drop"] += 1
                else:
                    self.counters["dup"] += 1
                    out += bytes((b, b))
        return bytes(out)

    def _write(self, fd, data):
        while data and not self._stop.is_set():
            try:
                n = os.write(fd, data)
                data = data[n:]
            except BlockingIOError:
                select.select([], [fd], [], 0.05)
            except OSError:
                return  # nobody on the other side: a line drops bytes then

    def _loop(self):
        pairs = {self._board: (self._master, "bytes_up"), self._master: (self._board, "bytes_down")}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(pairs), [], [], 0.1)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    time.sleep(0.05)  # the other end is away (EIO/EOF): do not spin
                    continue
                dst, name = pairs[fd]
                self.counters[name] += len(data)
                self._write(dst, self.corrupt(data))
