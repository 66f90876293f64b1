# firmware/store.py: atomic records, recovery from a cut between write and rename.
# runtimes: micropython cpython
import os
from firmware import store
from mptutil import rmtree, scratch


def test_save_load_roundtrip_and_default():
    d = scratch("st")
    p = d + "/rec.json"
    assert store.load(p, {"x": 0}) == {"x": 0}
    store.save(p, {"x": 1, "l": [1, 2.5]})
    assert store.load(p) == {"x": 1, "l": [1, 2.5]}
    store.save(p, {"x": 2})
    assert store.load(p) == {"x": 2}
    assert not store.exists(p + ".tmp")
    rmtree(d)


def test_corrupt_file_falls_back_to_complete_tmp():
    d = scratch("st")
    p = d + "/rec.json"
    store.save(p, {"x": 1})
    with open(p, "w") as f:
        f.write('{"x": ')          # torn
    with open(p + ".tmp", "w") as f:
        f.write('{"x": 2}')
    assert store.load(p) == {"x": 2}
    assert store.exists(p) and not store.exists(p + ".tmp")   # promoted
    rmtree(d)


def test_good_file_wins_over_tmp_and_torn_tmp_ignored():
    d = scratch("st")
    p = d + "/rec.json"
    store.save(p, {"x": 1})
    with open(p + ".tmp", "w") as f:
        f.write('{"x": 2')         # a cut during the write of the tmp
    assert store.load(p) == {"x": 1}
    os.remove(p)
    assert store.load(p, "dflt") == "dflt"   # missing + torn tmp -> default
    rmtree(d)


def test_cut_at_each_step_leaves_old_or_new():
    d = scratch("st")
    p = d + "/rec.json"
    real = (store.write_file, store.rename)

    class Cut(Exception):
        pass

    for k in (1, 2):
        store.save(p, {"v": "old"})
        n = [0]

        def wf(path, data):
            if callable(data):
                import io
                b = io.StringIO()
                data(b)
                data = b.getvalue().encode()
            n[0] += 1
            if n[0] == k:
                with open(path, "wb") as f:
                    f.write(data[:len(data) // 2])
                raise Cut()
            real[0](path, data)

        def rn(a, b):
            n[0] += 1
            if n[0] == k:
                os.remove(b)       # FAT-style: target gone, rename not done
                raise Cut()
            real[1](a, b)

        store.write_file, store.rename = wf, rn
        try:
            store.save(p, {"v": "new"})
        except Cut:
            pass
        finally:
            store.write_file, store.rename = real
        got = store.load(p)
        assert got in ({"v": "old"}, {"v": "new"}), (k, got)
        if k == 2:
            assert got == {"v": "new"}   # the complete tmp was recovered
    rmtree(d)


def test_large_record_streams():
    d = scratch("st")
    p = d + "/big.json"
    rec = [i * 0.5 for i in range(400)]
    store.save(p, rec)
    assert store.load(p) == rec
    rmtree(d)


def test_dump_is_json_with_arrays_as_base64():
    import io
    import json
    from array import array
    from binascii import a2b_base64
    rec = {"a": [1, -2, 2.5, None, True, "t\"x", [], {}], 7: {"n": [[0]]},
           "f": array("f", range(50)), "h": array("H", range(7)), "b": b"\x00\xff" * 40, "e": b""}
    buf = io.StringIO()
    store.dump(rec, buf)
    back = json.loads(buf.getvalue())
    assert back["a"] == rec["a"] and back["7"] == rec[7], back
    assert list(array("f", a2b_base64(back["f"]))) == list(rec["f"])   # 200 bytes: 5 pieces
    assert list(array("H", a2b_base64(back["h"]))) == list(rec["h"])   # 14 bytes: padded end
    assert a2b_base64(back["b"]) == rec["b"] and back["e"] == ""


def test_makedirs_nested():
    d = scratch("st")
    store.makedirs(d + "/a/b")
    assert store.exists(d + "/a/b")
    store.makedirs(d + "/a/b")
    rmtree(d)
