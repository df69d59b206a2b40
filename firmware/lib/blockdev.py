# The block-device contract the flash log is written against (after littlefs'
# `struct lfs_config`: read, prog, erase, sync). Implementations live in
# firmware/drivers/: flash_esp32.py (raw esp32.Partition, or littlefs files
# used as sectors) and nor_sim.py (host simulation that enforces NOR rules).
#
#   bd.block_size      bytes per erase block (4096 on ESP32 flash; the
#                      simulator accepts smaller sizes so tests wrap quickly)
#   bd.block_count     number of erase blocks
#   bd.read(block, offset, buf)   fill buf (bytearray or memoryview) from
#                      block at offset; never crosses the end of the block
#   bd.prog(block, offset, data)  program bytes: bits may only go 1 -> 0,
#                      and each byte is programmed at most once per erase
#                      (the log never asks for anything else)
#   bd.erase(block)    set every byte of the block to 0xFF. After an erase
#                      that was cut short the block's content is undefined.
#   bd.sync()          make every prog so far durable (no-op on raw flash,
#                      flush of the open file on the littlefs-file variant)
#
# Errors from a device are OSError; the log catches them, counts them and
# keeps running (it never loops on a broken flash).
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


ERASED = const(0xFF)  # value of every byte after erase
_CHUNK = const(64)  # blank-check granularity: bounded stack/heap use
_FF = b"\xff" * _CHUNK


def check(bd):
    """Return None if bd looks like a block device, else a one-line reason."""
    for name in ("read", "prog", "erase", "sync", "block_size", "block_count"):
        if not hasattr(bd, name):
            return "block device lacks " + name
    if bd.block_size < 64 or bd.block_size % 16:
        return "block_size must be a multiple of 16, at least 64"
    if bd.block_count < 4:
        return "need at least 4 blocks"
    return None


def is_blank(bd, block, offset, end, buf):
    """True if bytes [offset, end) of block all read 0xFF. buf is a caller
    supplied bytearray of at least _CHUNK bytes (no allocation per call)."""
    mv = memoryview(buf)
    while offset < end:
        n = end - offset
        if n > _CHUNK:
            n = _CHUNK
        part = mv[:n]
        bd.read(block, offset, part)
        if n == _CHUNK:
            if part != _FF:
                return False
        else:
            for i in range(n):
                if buf[i] != ERASED:
                    return False
        offset += n
    return True
