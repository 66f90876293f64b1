# Minimal unit-test runner that works on MicroPython and CPython alike.
# Usage: micropython tests/mp_runner.py ROOT TESTFILE
# Imports TESTFILE as a module, calls every top-level test_* function in source
# order and prints one line per test: "@@ name PASS" or "@@ name FAIL message".
# The pytest plugin in tests/conftest.py turns those lines into pytest items.
import sys
import gc

root = sys.argv[1]
path = sys.argv[2]
slash = path.rfind("/")
folder, fname = path[:slash], path[slash + 1:]
modname = fname[:-3]
sys.path.insert(0, root)
sys.path.insert(0, folder)

try:
    mod = __import__(modname)
except Exception as e:  # an import error fails every test in the file
    sys.print_exception(e) if hasattr(sys, "print_exception") else None
    print("@@ * FAIL import: %s: %s" % (type(e).__name__, e))
    raise SystemExit(1)

names = [n for n in dir(mod) if n.startswith("test_")]
# dir() order is arbitrary on MicroPython; run in a stable order
names.sort()
only = sys.argv[3:]
for name in names:
    if only and name not in only:
        continue
    gc.collect()
    try:
        getattr(mod, name)()
        print("@@ %s PASS" % name)
    except Exception as e:
        if hasattr(sys, "print_exception"):
            sys.print_exception(e)
        else:
            import traceback
            traceback.print_exc()
        msg = ("%s: %s" % (type(e).__name__, e)).replace("\n", " ")
        print("@@ %s FAIL %s" % (name, msg))
