# Mutation fuzz of the device's downlink parser, run ON MICROPYTHON.
# usage: micropython -X heapsize=64K tests/fuzz/mp_fuzz_downlink.py N SEED [CORPUS_DIR]
#
# Every input goes through exactly what the board does with bytes from the bridge:
# Deframer -> decode_frame (COBS, CRC) -> COSE verify (alg, kid, MAC) -> CBOR -> schema.
# Mutations are applied at three depths so each layer is reached: raw frame bytes (mostly
# stopped by COBS/CRC), the envelope re-framed with a correct CRC (reaches COSE/CBOR), and
# the payload re-signed with the right key (reaches the CBOR decoder and the schema).
# The run fails on any exception that is not a ProtocolError, and prints counts per
# rejection class and the heap high-water mark.
import sys
import gc
import os

from protocol import cbor, cose, framing, messages, wire
from protocol.errors import ProtocolError

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
corpus_dir = sys.argv[3] if len(sys.argv) > 3 else None
KEY = bytes(range(32))
KID = "fz-01"
key_for = lambda kid: KEY if kid == b"fz-01" else None

state = [seed or 1]


def rnd():
    x = state[0]
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    state[0] = x
    return x


SEEDS = [
    {0: 16, 1: 7}, {0: 17, 1: 600, 2: 3600, 3: 900, 4: 72, 5: 24, 6: 20}, {0: 18, 1: 2},
    {0: 19, 1: "fz-01-e3", 2: 2}, {0: 20, 1: 1795000000},
]
payloads = [cbor.dumps(p) for p in SEEDS]
if corpus_dir:
    try:
        for name in os.listdir(corpus_dir):
            with open(corpus_dir + "/" + name, "rb") as f:
                payloads.append(f.read())
    except OSError:
        pass
INTERESTING = (0x00, 0x01, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1F, 0x40, 0x5F, 0x7F, 0x80, 0x9F,
               0xA0, 0xBF, 0xC0, 0xD1, 0xF4, 0xF6, 0xF9, 0xFB, 0xFF)


def mutate(b):
    b = bytearray(b)
    for _ in range(1 + rnd() % 3):
        op = rnd() % 6
        n = len(b)
        if op == 0 and n:
            b[rnd() % n] ^= 1 << (rnd() % 8)
        elif op == 1 and n:
            b[rnd() % n] = INTERESTING[rnd() % len(INTERESTING)]
        elif op == 2 and n > 1:
            i = rnd() % n
            b = b[:i] + b[i + 1:]
        elif op == 3:
            i = rnd() % (n + 1)
            b = b[:i] + bytearray((rnd() & 0xFF,)) + b[i:]
        elif op == 4 and n:
            i = rnd() % n
            piece = b[i:i + 1 + rnd() % 8]
            b = b[:i] + piece + piece + b[i + len(piece):]
        elif op == 5 and n:
            b = b[:rnd() % n]
    return bytes(b)


counts = {}
accepted = 0
deframer = framing.Deframer()
gc.collect()
base_alloc = gc.mem_alloc()
peak = 0
for i in range(N):
    p = payloads[rnd() % len(payloads)]
    depth = rnd() % 3
    seq = rnd() % 100000
    if depth == 2:
        data = framing.encode_frame(cose.encode(KEY, KID, seq, mutate(p), cose.AAD_DOWN))
    elif depth == 1:
        env = mutate(cose.encode(KEY, KID, seq, p, cose.AAD_DOWN))
        try:
            data = framing.encode_frame(env)
        except ProtocolError:
            data = env
    else:
        data = mutate(framing.encode_frame(cose.encode(KEY, KID, seq, p, cose.AAD_DOWN)))
    for chunk in deframer.feed(data + b"\x00"):
        try:
            wire.unpack(chunk, key_for, cose.AAD_DOWN, messages.DOWNLINK)
            accepted += 1
        except ProtocolError as e:
            name = type(e).__name__
            counts[name] = counts.get(name, 0) + 1
        except Exception as e:  # a crash: print the input so it becomes a regression test
            print("CRASH", type(e).__name__, e, bytes(chunk).hex())
            raise
    if i % 1000 == 0:
        gc.collect()
        a = gc.mem_alloc()
        if a > peak:
            peak = a
print("inputs", N, "accepted", accepted, "rejected", sum(counts.values()), counts)
print("heap: baseline", base_alloc, "peak after collect", peak, "growth", peak - base_alloc)
