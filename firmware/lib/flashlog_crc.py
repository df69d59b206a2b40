# Pure-Python CRC-32 for flashlog.py on a port without binascii.crc32 (and
# for tests): loaded only when needed, so the gateway does not hold it.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_M32 = const(0xFFFFFFFF)


# --- CRC-32 (IEEE 802.3, reflected 0xEDB88320, same value as zlib.crc32).
# Nibble table split in 16-bit halves: on a 32-bit MicroPython port every
# intermediate stays a small int (no heap allocation per byte).
def _nibble(i):
    for _ in range(4):
        i = (i >> 1) ^ (0xEDB88320 if i & 1 else 0)
    return i


_TL = tuple(_nibble(i) & 0xFFFF for i in range(16))
_TH = tuple(_nibble(i) >> 16 for i in range(16))


def crc32_py(data, crc=0):
    """CRC-32 of data continuing from crc (as zlib.crc32(data, crc))."""
    crc ^= _M32
    lo = crc & 0xFFFF
    hi = crc >> 16
    tl = _TL
    th = _TH
    for b in data:
        lo ^= b
        for _ in (0, 1):
            j = lo & 15
            lo = ((lo >> 4) | ((hi & 15) << 12)) ^ tl[j]
            hi = (hi >> 4) ^ th[j]
    return ((hi << 16) | lo) ^ _M32
