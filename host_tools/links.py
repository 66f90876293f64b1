"""Transports between devices and the bridge, behind one small interface.

    link.open()                     first open; LinkError here is a startup error (exit 2)
    link.start(on_chunk)            one read thread; on_chunk(chunk, reply, route) per frame
    link.start(on_chunk, on_batch)  ... or on_batch([(chunk, reply, route), ...]) with the
                                    frames that arrived together (group commit)
    link.stop()

`chunk` is what lies between two 0x00 delimiters on a serial line, and one whole UDP
datagram (one frame per datagram, SPEC; its end delimiters dropped, at most RECV_MAX
bytes read) (junk included: it fails decoding and is counted by the bridge). `reply(frame_bytes)` sends a downlink back to where the chunk came
from (the same serial port, or the UDP sender's address); `route` names that place
("serial:/dev/ttyUSB0", "udp:10.0.0.7:4210") for logs and the monitor.
"""
from __future__ import annotations

import select
import socket
import threading
import time
import urllib.parse

from protocol.framing import MAX_FRAME, Deframer

RECV_MAX = MAX_FRAME + 3   # a longer datagram arrives cut to this, still longer than any frame


class LinkError(Exception):
    pass


def guarded(on_chunk, log):
    """A bug in the handler must not kill a link's only read thread: log it and go on."""
    def call(chunk, reply, route):
        try:
            on_chunk(chunk, reply, route)
        except Exception as e:
            log("handler_error", route=route, error="%s: %s" % (type(e).__name__, e))
    return call


def batched(on_chunk, on_batch, log):
    """emit(items): the frames read together, to on_batch at once (or on_chunk one by one)."""
    if on_batch is None:
        one = guarded(on_chunk, log)
        return lambda items: [one(*it) for it in items]

    def emit(items):
        try:
            on_batch(items)
        except Exception as e:
            log("handler_error", route=items[0][2] if items else "?", error="%s: %s" % (type(e).__name__, e))
    return emit


BATCH_MAX = 512   # datagrams drained from the socket per batch at most
GROUP_WAIT = 0.0   # s: how long a batch that found company waits for more (UdpLink.group_wait; off)
PEERS_MAX = 20000  # UDP senders whose reply function is kept (the table is emptied past this)


class Link:
    """Where frames reach the bridge. start(on_chunk) runs the subclass's _run(on_chunk) in
    a daemon thread; stop() ends it (subclasses set self._stop, an Event) and _close()s."""
    name = ""
    thread = None

    def open(self):
        pass

    def _close(self):
        pass

    def _run(self, on_chunk):
        raise NotImplementedError

    def start(self, on_chunk, on_batch=None):
        self.thread = threading.Thread(target=self._run, args=(batched(on_chunk, on_batch, self.log),),
                                       name=self.name, daemon=True)
        self.thread.start()

    def stop(self):
        self._stop.set()
        if self.thread:
            self.thread.join(2)
        self._close()


class SerialLink(Link):
    """A USB/UART serial port; survives unplug/replug by reopening the path with backoff.

    Any baud rate pyserial accepts. The port is opened with DTR and RTS deasserted so
    opening it does not reset an ESP32 through its auto-reset circuit.
    """

    def __init__(self, port: str, baud: int = 115200, log=None, backoff: float = 0.2, max_backoff: float = 5.0):
        self.port, self.baud = port, baud
        self.name = "serial:" + port
        self.log = log or (lambda event, **kw: None)
        self.backoff0, self.max_backoff = backoff, max_backoff
        self.ser = None
        self.opens = 0
        self._wlock = threading.Lock()
        self._stop = threading.Event()
        self.thread = None

    def _open(self):
        import serial
        s = serial.Serial()
        s.port, s.baudrate, s.timeout = self.port, self.baud, 0.2
        s.dtr, s.rts = False, False
        try:
            s.exclusive = True  # two bridges on one port would steal each other's bytes
        except (AttributeError, ValueError):
            pass
        try:
            s.open()
        except (serial.SerialException, OSError, ValueError) as e:
            raise LinkError("cannot open %s: %s" % (self.port, e)) from None
        self.ser = s
        self.opens += 1

    def open(self):
        if self.ser is None:
            self._open()

    def _close(self):
        s, self.ser = self.ser, None
        if s is not None:
            try:
                s.close()
            except Exception:
                pass

    def write(self, frame: bytes):
        with self._wlock:
            s = self.ser
            if s is None:
                raise LinkError("%s is not connected" % self.port)
            try:
                s.write(frame)
            except Exception as e:
                raise LinkError("write %s: %s" % (self.port, e)) from None

    def _run(self, emit):
        backoff = self.backoff0
        deframer = Deframer()
        while not self._stop.is_set():
            if self.ser is None:
                try:
                    self._open()
                except LinkError as e:
                    self.log("serial_open_failed", port=self.port, error=str(e), retry_s=backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                self.log("serial_open", port=self.port, baud=self.baud)
                backoff = self.backoff0
                deframer = Deframer()  # a half frame from before the unplug is junk
            try:
                s = self.ser
                data = s.read(s.in_waiting or 1)
            except Exception as e:  # SerialException, OSError(EIO) on unplug, TypeError on a closed port
                self.log("serial_lost", port=self.port, error=str(e))
                self._close()
                continue
            if data:
                items = [(chunk, self.write, self.name) for chunk in deframer.feed(data)]
                if items:
                    emit(items)


def parse_udp_url(url: str):
    p = urllib.parse.urlsplit(url)
    if p.scheme != "udp" or p.port is None:
        raise ValueError("listen address must be udp://HOST:PORT, not %r" % url)
    return p.hostname or "0.0.0.0", p.port


class UdpLink(Link):
    """udp://HOST:PORT: each datagram is one frame; replies go to the sender's address.

    group_wait: when the socket already held more than one datagram (frames are arriving
    together), wait this long once for the rest before handing the batch over, so one
    COMMIT carries more of them. A datagram that arrives alone is handed over at once."""

    def __init__(self, url: str, log=None, group_wait: float = GROUP_WAIT):
        self.group_wait = max(0.0, float(group_wait))
        try:
            self.host, self.port = parse_udp_url(url)
        except ValueError as e:
            raise LinkError(str(e)) from None
        self.log = log or (lambda event, **kw: None)
        self.sock = None
        self.name = "udp:%s:%d" % (self.host, self.port)
        self._stop = threading.Event()
        self.thread = None

    def open(self):
        if self.sock:
            return
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            s.bind((self.host, self.port))
        except OSError as e:
            s.close()
            raise LinkError("cannot listen on udp://%s:%d: %s" % (self.host, self.port, e.strerror)) from None
        s.setblocking(False)  # _run waits with select, then drains what is queued
        try:  # room for the datagrams that arrive during one commit under load
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError:
            pass
        self.sock = s
        self.address = s.getsockname()[:2]  # the real port when 0 was asked for
        self.name = "udp:%s:%d" % self.address

    def start(self, on_chunk, on_batch=None):
        self.open()     # bind now: a port in use is an error for the caller, not the thread
        Link.start(self, on_chunk, on_batch)

    def _close(self):
        if self.sock:
            self.sock.close()

    def _reply_to(self, addr):
        sock = self.sock

        def reply(frame):
            try:
                try:
                    sock.sendto(frame, addr)
                except BlockingIOError:  # send buffer full: wait for room once, briefly
                    select.select([], [sock], [], 1.0)
                    sock.sendto(frame, addr)
            except OSError as e:
                raise LinkError("sendto %s: %s" % (addr, e)) from None
        return reply

    def _run(self, emit):
        """Blocks for one datagram, then drains what else is already queued (up to
        BATCH_MAX): the datagrams that arrived while the last batch was being committed
        form the next one, so batches grow with the load by themselves. If that found more
        than one and group_wait is set, the link waits that long once and drains again.
        Measured at 5,000 msg/s from 1,000 devices on a calm machine, 2 ms: ~15 frames a
        batch instead of ~6 and ~20% less bridge CPU per message, but send->ack p50 2 -> 8
        ms and p99 12 -> 30 ms; under other load batches grow by themselves and the saving
        goes. So it is off by default. A lone datagram is never held back."""
        sock = self.sock
        self._peers = {}   # sender address -> (reply, route) for this socket; bounded (PEERS_MAX)
        while not self._stop.is_set():
            try:
                if not select.select([sock], [], [], 0.2)[0]:
                    continue
                # a frame is at most MAX_FRAME + 2 bytes: anything longer is cut here and
                # refused whole by its length, never read further
                got = [sock.recvfrom(RECV_MAX)]
            except (BlockingIOError, InterruptedError):
                continue
            except (OSError, ValueError) as e:  # ValueError: select on a closed socket
                if self._stop.is_set():
                    break
                self.log("udp_error", error=str(e))
                time.sleep(0.1)
                continue
            for again in (False, True):
                if again:
                    if not 1 < len(got) < BATCH_MAX or not self.group_wait:
                        break
                    time.sleep(self.group_wait)
                while len(got) < BATCH_MAX:
                    try:
                        got.append(sock.recvfrom(RECV_MAX))
                    except OSError:  # BlockingIOError: nothing more queued
                        break
            items = []
            peers = self._peers
            if len(peers) > PEERS_MAX:
                peers.clear()
            for data, addr in got:
                # one frame per datagram (SPEC): the delimiters at its ends are dropped, any
                # other 0x00 makes the whole datagram one bad chunk, never many (a 4 KB
                # datagram of zero-separated junk used to be ~170 rejected chunks, each logged)
                chunk = data[1:] if data[:1] == b"\x00" else data
                chunk = chunk[:-1] if chunk[-1:] == b"\x00" else chunk
                if chunk:
                    peer = peers.get(addr)
                    if peer is None:   # a device sends from one address: its reply and route are made once
                        peer = peers[addr] = (self._reply_to(addr), "udp:%s:%d" % addr[:2])
                    items.append((chunk, peer[0], peer[1]))
            if items:
                emit(items)
