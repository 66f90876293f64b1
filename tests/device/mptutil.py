# Scratch directories for the MicroPython device tests (the unix port has no shutil or
# tempfile). Runs on CPython too.
import os


def rmtree(path):
    """Remove path and everything under it; a missing path is fine."""
    path = path.rstrip("/")
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        p = path + "/" + n
        try:
            os.remove(p)
        except OSError:
            rmtree(p)
    os.rmdir(path)


def scratch(tag, end=""):
    """A new empty directory /tmp/sc-<tag>-<random>; `end` is appended ("/" for a root)."""
    path = "/tmp/sc-%s-%s" % (tag, "".join("%02x" % b for b in os.urandom(4)))
    os.mkdir(path)
    return path + end
