# Lets firmware modules import on CPython too (host tests, type checks).
try:
    from micropython import const  # noqa: F401
except ImportError:  # CPython
    def const(x):
        return x

try:
    from sys import print_exception  # noqa: F401
except ImportError:  # CPython
    import traceback

    def print_exception(e, file=None):
        traceback.print_exception(type(e), e, e.__traceback__, file=file)
