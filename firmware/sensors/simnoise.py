"""Seeded noise for the chip models (simhx711, simsonar): small, so a test that loads one
model does not compile another."""


def xorshift32(x):
    """One step of Marsaglia's xorshift32 (x != 0)."""
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    return x ^ (x << 5) & 0xFFFFFFFF
