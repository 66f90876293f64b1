# Lets firmware modules import on CPython too (host tests, type checks); the stand-ins
# live in firmware/cpython.py, which a board never loads.
try:
    from micropython import const  # noqa: F401
    from sys import print_exception  # noqa: F401
except ImportError:  # CPython
    from firmware.cpython import const, print_exception  # noqa: F401
