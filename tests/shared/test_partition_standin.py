# The flash log's ESP32 block device (drivers/flash_esp32.py PartitionBD)
# under a strict esp32.Partition stand-in, on both runtimes (issue 17): it
# follows ports/esp32/esp32_partition.c of MicroPython v1.27 --
#   find(type=TYPE_APP, subtype=ANY, label=None) -> list of partitions
#   readblocks(block, buf[, offset]), writeblocks(block, buf[, offset]):
#     without offset a "simple" write erases the range first; with it the
#     write is raw; out of the partition -> OSError (ESP_ERR_INVALID_SIZE)
#   ioctl(4) block count, ioctl(5) block size, ioctl(6, n) erases block n
# and NOR flash itself: programming can only clear bits (1 -> 0); setting a
# bit needs an erase. The stand-in raises there (the board would silently
# AND the bytes), so a driver or log that programs without erasing fails.
import sys

import flashlog

MP_HEAPSIZE = "1M"  # the stand-in's flash image is test data
_SECTOR = 4096


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1
    table = [("vegwlog", 1, 16 * _SECTOR)]  # (label, type, size)
    flash = {}
    ops = []

    def __init__(self, label, size):
        self.label = label
        self.size = size
        if label not in Partition.flash:
            Partition.flash[label] = bytearray(b"\xff" * size)
        self.mem = Partition.flash[label]

    @staticmethod
    def find(type=0, subtype=255, label=None, block_size=4096):
        return [Partition(lb, size) for lb, ty, size in Partition.table
                if ty == type and (label is None or lb == label)]

    def _range(self, off, n):
        if off < 0 or off + n > self.size:
            raise OSError(0x104)  # ESP_ERR_INVALID_SIZE

    def readblocks(self, block, buf, offset=None):
        off = block * _SECTOR + (offset or 0)
        self._range(off, len(buf))
        buf[:] = self.mem[off:off + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        off = block * _SECTOR
        if offset is None:
            self._erase(off, len(buf))
        else:
            off += offset
        self._range(off, len(buf))
        m = self.mem
        for i in range(len(buf)):
            b = buf[i]
            if b & ~m[off + i] & 0xFF:
                raise AssertionError("programming byte %d of %s needs an erase" % (off + i, self.label))
            m[off + i] = b
        Partition.ops.append(("prog", off, len(buf)))

    def _erase(self, off, n):
        if off % _SECTOR or n % _SECTOR:
            raise OSError(0x102)  # ESP_ERR_INVALID_ARG: erase is sector-aligned
        self._range(off, n)
        for i in range(off, off + n):
            self.mem[i] = 0xFF
        Partition.ops.append(("erase", off, n))

    def ioctl(self, op, arg):
        if op == 4:
            return self.size // _SECTOR
        if op == 5:
            return _SECTOR
        if op == 6:
            self._erase(arg * _SECTOR, _SECTOR)
            return 0
        return 0


class _Esp32:
    Partition = Partition


def _with_esp32(fn):
    saved = sys.modules.get("esp32")
    sys.modules["esp32"] = _Esp32
    try:
        from drivers import flash_esp32

        return fn(flash_esp32)
    finally:
        if saved is None:
            sys.modules.pop("esp32", None)
        else:
            sys.modules["esp32"] = saved


def test_partition_block_device_runs_the_log_through_wraps_and_reopens():
    Partition.flash = {}
    Partition.ops = []

    def go(fe):
        bd = fe.PartitionBD()
        assert bd.block_count == 16 and bd.block_size == _SECTOR and bd.kind == "partition"
        log = flashlog.FlashLog(bd)
        assert log.opened_ok
        seqs = []
        for k in range(1200):  # several times round the ring
            seqs.append(log.append(1, b"record %05d " % k + b"x" * (k % 200)))
            if k % 7 == 0:
                log.flush()
            if k % 50 == 0:
                log.mark_uploaded(seqs[-1])
        log.flush()
        again = flashlog.FlashLog(fe.PartitionBD())  # a reboot: the same flash
        got = [(s, p) for s, t, p in again.read_from(again.oldest_seq() or 1)]
        assert got and got[-1][1].startswith(b"record 01199 ")
        assert again.torn == 0 and again.bad_reads == 0
        last = int(got[-1][1][7:12])
        assert [int(p[7:12]) for s, p in got] == list(range(last - len(got) + 1, last + 1))
        assert any(op[0] == "erase" for op in Partition.ops)

    _with_esp32(go)


def test_no_partition_is_enodev_and_out_of_range_raises():
    def go(fe):
        saved = Partition.table
        Partition.table = []
        try:
            fe.PartitionBD()
            raised = None
        except OSError as e:
            raised = e.args[0]
        Partition.table = saved
        assert raised == 19
        bd = fe.PartitionBD()
        try:
            bd.read(16, 0, bytearray(4))
            ok = True
        except OSError:
            ok = False
        assert not ok

    _with_esp32(go)
