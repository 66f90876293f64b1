# 32-bit pointers and GC blocks, as on an ESP32 (Xtensa LX6/LX7, RISC-V on the C3).
CFLAGS += -m32
LDFLAGS += -m32
# No 32-bit OpenSSL/mbedTLS, libffi or Berkeley DB here; the firmware uses none of them.
MICROPY_PY_SSL = 0
MICROPY_PY_BTREE = 0
MICROPY_PY_FFI = 0
FROZEN_MANIFEST =
