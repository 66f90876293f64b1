# firmware/outbox.py: durability, seq lease, bounds and drop policy, stop-and-wait,
# and a power cut injected at every single flash write step.
# runtimes: micropython cpython
# heapsize: 128K
import os

from firmware import outbox, store
from firmware.outbox import Outbox, OutboxFull, ConsentError
from protocol import cbor, messages as M
from mptutil import rmtree, scratch


def level(r):
    return {1: r, 2: 50, 6: 9}


def order(n):
    return {0: M.EVENT, 1: M.EV_ORDER_REQUEST, 2: 1, 3: "dev-b%d" % n, 5: M.BY_BUTTON}


def usage(c):
    return {0: M.USAGE, 1: c, 2: 1}


def test_put_survives_reboot_and_ack_deletes():
    d = scratch("ob") + "/ob"
    ob = Outbox(d, consent=M.CONSENT_FULL)
    s1 = ob.put(level(10))
    s2 = ob.put(order(1))
    assert (s1, s2) == (0, 1)
    ob2 = Outbox(d, consent=M.CONSENT_FULL)
    assert ob2.seqs() == [0, 1]
    assert cbor.loads(ob2.read(1)) == order(1)
    assert ob2.ack(0) and not ob2.ack(0)
    assert Outbox(d).seqs() == [1]
    rmtree(d[:-3])


def test_seq_lease_skips_ahead_never_back():
    d = scratch("ob") + "/ob"
    ob = Outbox(d, consent=4)
    writes = [0]
    real = store.save

    def counting(p, o):
        writes[0] += 1
        real(p, o)

    store.save = counting
    try:
        seqs = [ob.put(level(i)) for i in range(20)]
        for s in seqs:
            ob.ack(s)
    finally:
        store.save = real
    assert seqs == list(range(20))
    assert writes[0] == 2            # one lease write per 16 seqs
    ob2 = Outbox(d, consent=4)
    s = ob2.put(level(1))
    assert s >= 20 and s == 32, s    # resumes at the persisted high-water mark
    rmtree(d[:-3])


def test_bounds_drop_oldest_level_first_and_keep_orders():
    d = scratch("ob") + "/ob"
    ob = Outbox(d, max_count=6, max_bytes=4096, reserve=2, reserve_bytes=0, consent=4)
    for i in range(4):
        ob.put(level(i))
    s = ob.put(level(99))            # levels may use 6-2 = 4 slots: the oldest goes, but
    assert ob.dropped == 1 and len(ob) == 4   # not the head (it may be in flight)
    assert ob.seqs()[:2] == [0, 2] and s in ob.seqs()
    o1 = ob.put(order(1))
    o2 = ob.put(order(2))             # uses the reserve, no drop
    assert len(ob) == 6 and ob.dropped == 1
    o3 = ob.put(usage(5))             # full: a level report makes room
    assert ob.dropped == 2 and o3 in ob.seqs()
    for k in range(2):
        ob.put(order(10 + k))          # eats every remaining level report but the head
    assert all(cbor.loads(ob.read(q)).get(0) in (M.EVENT, M.USAGE) for q in ob.seqs()[1:])
    assert ob.put(level(5)) is None   # full of kept messages: level refused
    try:
        ob.put(order(20))
        raise AssertionError("expected OutboxFull")
    except OutboxFull:
        pass
    assert o1 in ob.seqs() and o2 in ob.seqs()
    rmtree(d[:-3])


def test_byte_bound():
    d = scratch("ob") + "/ob"
    ob = Outbox(d, max_count=100, max_bytes=60, reserve=0, reserve_bytes=20, consent=4)
    n = len(cbor.dumps(level(1)))
    for i in range(10):
        ob.put(level(i))
    assert ob.nbytes <= 40 and ob.nbytes + n > 40
    rmtree(d[:-3])


def test_consent_gate_and_purge():
    d = scratch("ob") + "/ob"
    ob = Outbox(d, consent=M.CONSENT_ORDER_ONLY)
    try:
        ob.put(level(1))
        raise AssertionError("level needs full consent")
    except ConsentError:
        pass
    assert len(ob) == 0 and os.listdir(d) == []    # nothing built on flash, not even a seq lease
    ob.set_consent(M.CONSENT_FULL)
    ob.put(level(1))
    ob.put(order(1))
    ob.put(usage(3))
    ob.set_consent(M.CONSENT_ORDER_ONLY)
    left = [cbor.loads(ob.read(s)) for s in ob.seqs()]
    assert left == [order(1)], left
    assert len(Outbox(d).seqs()) == 1
    rmtree(d[:-3])


def test_hello_superseded():
    d = scratch("ob") + "/ob"
    ob = Outbox(d, consent=4)
    h = {0: M.HELLO, 1: 1, 2: "fw", 3: "b", 4: "sku", 6: 100, 7: 0, 9: 4}
    ob.put(order(1))
    h1 = ob.put(h)
    h2 = ob.put(h)
    assert ob.seqs() == [0, h2] and ob.dropped == 1
    h3 = ob.put(h)
    assert ob.seqs() == [0, h3] and ob.dropped == 2
    ob.ack(0)
    s = ob.put(h)     # the head is never dropped: it may be in flight
    assert ob.seqs() == [h3, s] and ob.dropped == 2 and h1 < h2 < h3 < s
    rmtree(d[:-3])


def test_stop_and_wait_in_order_with_backoff():
    d = scratch("ob") + "/ob"
    ob = Outbox(d, timeout_ms=100, max_timeout_ms=350, consent=4)
    a = ob.put(level(1))
    b = ob.put(level(2))
    seq, data = ob.next_due(0)
    assert seq == a and cbor.loads(data) == level(1)
    assert ob.next_due(50) is None           # one in flight
    assert ob.next_due(100)[0] == a          # timeout: resend, wait now 200
    assert ob.next_due(250) is None
    assert ob.next_due(300)[0] == a          # wait now 350 (capped)
    assert ob.next_due(649) is None
    assert ob.next_due(650)[0] == a
    ob.ack(b)                                # an ack out of order is fine
    assert ob.next_due(700) is None          # a still in flight
    ob.ack(a)
    assert ob.next_due(701) is None and len(ob) == 0
    c = ob.put(level(3))
    assert ob.next_due(702)[0] == c
    assert ob.next_due(802)[0] == c and ob._wait == 200   # backoff restarted per message
    rmtree(d[:-3])


class Cut(Exception):
    pass


def _with_cut(k, fn):
    """Run fn() with a power cut at flash write step k. True if it completed."""
    real = (store.write_file, store.rename, store.remove)
    n = [0]

    def step():
        n[0] += 1
        return n[0] == k

    def wf(path, data):
        if callable(data):       # a streamed JSON record: render it to cut it in half
            import io
            b = io.StringIO()
            data(b)
            data = b.getvalue().encode()
        if step():
            with open(path, "wb") as f:
                f.write(data[:len(data) // 2])   # torn write
            raise Cut()
        real[0](path, data)

    def rn(a, b):
        if step():
            raise Cut()
        real[1](a, b)

    def rm(p):
        if step():
            raise Cut()
        real[2](p)

    store.write_file, store.rename, store.remove = wf, rn, rm
    try:
        fn()
        return True
    except Cut:
        return False
    finally:
        store.write_file, store.rename, store.remove = real


def test_power_cut_at_every_write_step():
    # scenario: puts of every class, acks, drops on a small outbox, across two lease blocks
    ops = []
    for i in range(22):
        ops.append(("put", level(i)))
        if i % 3 == 0:
            ops.append(("put", order(i)))
        if i % 4 == 1:
            ops.append(("ack", None))   # ack the oldest pending
        if i == 10:
            ops.append(("put", usage(i)))
    root = scratch("ob")
    k = 1
    while True:
        d = root + "/k%d" % k
        kept = {}        # accepted, not acked, never-droppable: seq -> payload
        levels = {}      # accepted level reports (may be dropped)
        issued = [-1]
        ob = Outbox(d, max_count=8, max_bytes=4096, reserve=3, reserve_bytes=0, consent=4)
        pending = [None]   # (op, arg) in progress when the cut hit

        def run():
            for op, arg in ops:
                pending[0] = (op, arg)
                if op == "put":
                    s = ob.put(arg)
                    if s is not None:
                        assert s > issued[0]
                        issued[0] = s
                        (levels if arg.get(0, 2) == M.LEVEL else kept)[s] = arg
                else:
                    q = ob.seqs()
                    if q:
                        ob.ack(q[0])
                        kept.pop(q[0], None)
                        levels.pop(q[0], None)
                pending[0] = None

        done = _with_cut(k, run)
        # "reboot"
        ob2 = Outbox(d, max_count=8, max_bytes=4096, reserve=3, reserve_bytes=0, consent=4)
        got = {}
        for s in ob2.seqs():
            got[s] = cbor.loads(ob2.read(s))   # every stored message is whole
        for s in kept:
            assert got.get(s) == kept[s], (k, s, "accepted message lost")
        for s in got:
            if s in kept or s in levels:
                assert got[s] == (kept.get(s) or levels.get(s))
            else:
                # only the message being put, or being acked, at the cut
                p = pending[0]
                assert p is not None, (k, s, "unexpected message")
                if p[0] == "put":
                    assert got[s] == p[1] and s > issued[0], (k, s)
                else:
                    raise AssertionError((k, s, "acked message came back"))
        assert not [n for n in os.listdir(d) if n.endswith(".cbor.tmp")]
        s = ob2.put(usage(1))
        assert s > issued[0] and (not got or s > max(got)), (k, s, issued[0])
        rmtree(d)
        if done:
            break
        k += 1
    assert k > 50, k   # the scenario really had many steps
    rmtree(root)


def _markers(d):
    return sorted(n for n in os.listdir(d) if n[0] == "d")


def test_dropped_count_persists_with_the_drop():
    d = scratch("ob") + "/ob"
    ob = Outbox(d, max_count=4, reserve=0, reserve_bytes=0, consent=4)
    for i in range(7):
        ob.put(level(i))
    assert ob.dropped == 3 and ob.seqs() == [0, 4, 5, 6] and _markers(d) == ["d3"]
    ob.set_consent(M.CONSENT_AUTOMATIC)    # a purge counts too
    assert len(ob) == 0 and ob.dropped == 7 and _markers(d) == ["d7"]
    assert Outbox(d).dropped == 7
    # a cut between the rename and the removal of the old marker leaves two: the higher wins
    with open(d + "/d5", "w") as f:
        f.write("x")
    assert Outbox(d).dropped == 7 and _markers(d) == ["d7"]
    rmtree(d[:-3])


def test_power_cut_during_a_drop_counts_it_once():
    root = scratch("ob")
    for k in (1, 2):
        d = root + "/k%d" % k
        ob = Outbox(d, max_count=3, reserve=0, reserve_bytes=0, consent=4)
        for i in range(3):
            ob.put(level(i))
        ob.put(level(3))                   # drop 1 (seq 1): marker d1
        before = ob.seqs()
        done = _with_cut(k, lambda: ob.put(level(4)))   # drop 2: rename, then remove d1
        assert not done
        ob2 = Outbox(d, max_count=3, reserve=0, reserve_bytes=0, consent=4)
        if k == 1:     # cut at the rename: nothing dropped yet
            assert ob2.dropped == 1 and ob2.seqs() == before
        else:          # cut after the rename: dropped and counted
            assert ob2.dropped == 2 and ob2.seqs() == [0, 3] and _markers(d) == ["d2"]
    rmtree(root)


def _used(d):
    n = 0
    for name in os.listdir(d):
        try:
            n += os.stat(d + "/" + name)[6]
        except OSError:
            pass
    return n


class Full:
    """The flash in dir d has `free` more bytes: a write that would not fit raises
    OSError(ENOSPC) as LittleFS does (the torn file stays until removed)."""
    def __init__(self, d, free=0):
        self.d = d
        self.quota = _used(d) + free
        self.real = store.write_file

    def __enter__(self):
        def wf(path, data):
            self.real(path, data)
            if _used(self.d) > self.quota:
                raise OSError(28)
        store.write_file = wf
        return self

    def __exit__(self, *a):
        store.write_file = self.real


def test_flash_full_drops_levels_keeps_orders_and_recovers():
    d = scratch("ob") + "/ob"
    ob = Outbox(d, consent=4)
    issued = [ob.put(level(0))]            # the head, and the seq lease is on flash
    with Full(d, 40):
        for i in range(12):                 # full: newer level reports replace older ones
            s = ob.put(level(i))
            if s is not None:
                issued.append(s)
        assert len(issued) > 8 and ob.dropped > 0
        kept = []
        while True:                         # orders and usage: level reports make room
            p = order(len(kept)) if len(kept) % 2 else usage(len(kept))
            try:
                s = ob.put(p)
            except OutboxFull:
                break
            kept.append((s, p))
            issued.append(s)
        assert len(kept) >= 2 and ob.dropped > 0
        assert ob.put(level(99)) is None
        assert not [n for n in os.listdir(d) if n.endswith(".tmp")]
    # only level reports went, never the head; every seq issued is stored or counted dropped
    assert issued == list(range(len(issued)))          # refusals handed their seq back: no gap
    assert len(issued) == len(ob) + ob.dropped
    assert ob.seqs()[0] == 0 and [q for q, p in kept] == ob.seqs()[-len(kept):]
    ob2 = Outbox(d, consent=4)             # after a reboot: the same, and space again
    assert ob2.seqs() == ob.seqs() and ob2.dropped == ob.dropped
    assert [cbor.loads(ob2.read(q)) for q, p in kept] == [p for q, p in kept]
    assert ob2.put(order(99)) == 16        # the next lease block
    rmtree(d[:-3])


def test_store_write_failure_leaves_old_record_and_no_tmp():
    d = scratch("ob")
    p = d + "/r.json"
    store.save(p, {"v": 1})
    with Full(d, 4):
        try:
            store.save(p, {"v": 2})
            raise AssertionError("expected OSError")
        except OSError:
            pass
    assert store.load(p) == {"v": 1} and os.listdir(d) == ["r.json"]
    rmtree(d)
