# runtimes: micropython cpython
# Proves the runner itself: these run on both runtimes.
import sys


def test_runtime_has_sha256():
    import hashlib
    h = hashlib.sha256(b"abc").digest()
    assert h[:4] == b"\xba\x78\x16\xbf", h


def test_failure_is_reported():
    try:
        assert 1 == 2, "boom"
    except AssertionError as e:
        assert "boom" in str(e)
    else:
        raise Exception("assert did not raise")
