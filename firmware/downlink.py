"""Downlink commands from the bridge: verify, reject replays, apply.

A chunk must verify as COSE_Mac0 with the device key and the downlink AAD (so an uplink
frame reflected back never passes) and validate as a DOWNLINK type; anything else is
refused and counted, never applied. Replay protection: the highest downlink seq seen is
kept and everything <= it is refused. It is persisted at once for commands that change
state (config, consent, order_status, time, weather). Acks only advance it in RAM
(persisted at the next checkpoint): an ack per uplink message would otherwise add a flash
write per message, and replaying an old ack is harmless (uplink seqs never repeat, the
acked file is gone).

The agent supplies the actions (`on_ack`, `on_config`, `on_consent`, `on_status`, `on_time`,
`on_rekey`); a weather downlink makes the agent's estimator the degree-day one (firmware/weather.py).
"""
from firmware import store
from protocol import cbor, cose, framing, messages as M
from protocol.errors import ProtocolError


class Downlink:
    def __init__(self, key, path=None, agent=None):
        self.key = key
        self.path = path
        self.agent = agent
        st = (store.load(path) if path else None) or {}
        self.seq = st.get("s", -1)
        self.refused = 0
        self.replayed = 0
        self.applied = 0
        self._dirty = False

    def checkpoint(self):
        """Persist the replay floor if it moved since the last write."""
        if self._dirty:
            if self.path:
                store.save(self.path, {"s": self.seq})
            self._dirty = False

    def handle(self, chunk):
        """One frame chunk from the transport. Returns the applied payload or None."""
        try:
            # protocol/wire.py's unpack(), inlined: the device need not load that module
            kid, seq, raw = cose.verify(framing.decode_frame(chunk), self.key, cose.AAD_DOWN)
            p = cbor.loads(raw)
            M.validate(p, M.DOWNLINK)
        except (ProtocolError, ValueError, TypeError, KeyError, IndexError):
            self.refused += 1
            return None
        if seq <= self.seq:
            self.replayed += 1
            return None
        self.seq = seq
        self._dirty = True
        t = p[0]
        a = self.agent
        if t == M.ACK:
            if a is not None:
                a.on_ack(p[1])
        else:
            self.checkpoint()     # now, before applying: a replay after a cut is refused
            if a is not None:
                if t == M.CONFIG:
                    a.on_config(p)
                elif t == M.CONSENT:
                    a.on_consent(p[1])
                elif t == M.ORDER_STATUS:
                    a.on_status(p[1], p[2])
                elif t == M.TIME:
                    a.on_time(p[1])
                elif t == M.REKEY:
                    a.on_rekey(p[1])
                else:     # M.WEATHER (validated above): firmware/weather.py, loaded now
                    from firmware import weather
                    weather.downlink(a, p)
        self.applied += 1
        return p
