# Block devices for the flash log on an ESP32 (contract: lib/blockdev.py).
# Thin adapters, no log logic.
#
# PartitionBD  a raw data partition (esp32.Partition) named "vegwlog". Needs a
#              firmware built with a partition table that has one (a board
#              build); stock firmware has none: its filesystem takes all the
#              flash after the app. Real NOR semantics: prog programs in place,
#              erase is one 4 KB sector; no filesystem in between.
# FileSectorsBD  on stock firmware: block_count preallocated files of 4 KB in
#              a directory of the littlefs filesystem, one file per sector.
#              littlefs is copy-on-write: every sync() rewrites the file's
#              4 KB block (count: .syncs), so the log batches and syncs on a
#              schedule. Power-safe through littlefs itself; the log's own
#              CRCs catch the rest.
# open_default() picks the partition when the firmware has one, else files.
try:
    from micropython import const
except ImportError:  # CPython (tests use a fake esp32 module)

    def const(x):
        return x


import os

_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_BLOCK_ERASE = const(6)
_SECTOR = const(4096)
_FILL = const(256)  # bytes written per call when filling with 0xFF


class PartitionBD:
    def __init__(self, label="vegwlog"):
        import esp32

        found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=label)
        if not found:
            raise OSError(19)  # ENODEV: this firmware has no such partition
        self._p = found[0]
        self.block_size = self._p.ioctl(_IOCTL_BLOCK_SIZE, 0)
        self.block_count = self._p.ioctl(_IOCTL_BLOCK_COUNT, 0)
        self.kind = "partition"
        self.syncs = 0

    def read(self, block, offset, buf):
        self._p.readblocks(block, buf, offset)

    def prog(self, block, offset, data):
        self._p.writeblocks(block, data, offset)  # with offset: program only, no erase

    def erase(self, block):
        self._p.ioctl(_IOCTL_BLOCK_ERASE, block)

    def sync(self):
        self.syncs += 1  # raw flash: every prog is already durable


class FileSectorsBD:
    def __init__(self, path="/vegwlog", block_count=120):
        self.block_size = _SECTOR
        self.block_count = block_count
        self.kind = "files"
        self.path = path
        self.syncs = 0
        self.bytes_written = 0
        self._f = None  # one open file: the sector being programmed
        self._fi = -1
        try:
            os.mkdir(path)
        except OSError:
            pass  # exists
        for i in range(block_count):
            try:
                size = os.stat(self._name(i))[6]
            except OSError:
                size = -1
            if size != _SECTOR:
                self._fill(i, "wb")  # first boot (or a torn create): preallocate

    def _name(self, i):
        return "%s/s%03d.bin" % (self.path, i)

    def _fill(self, i, mode):
        ff = b"\xff" * _FILL
        with open(self._name(i), mode) as f:
            for _ in range(_SECTOR // _FILL):
                f.write(ff)
        self.bytes_written += _SECTOR

    def _close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
            self._fi = -1

    def read(self, block, offset, buf):
        if block == self._fi:  # same handle: sees its own unsynced writes
            self._f.seek(offset)
            n = self._f.readinto(buf)
        else:
            with open(self._name(block), "rb") as f:
                f.seek(offset)
                n = f.readinto(buf)
        n = n or 0
        for i in range(n, len(buf)):  # short file after a cut: reads as erased
            buf[i] = 0xFF

    def prog(self, block, offset, data):
        if block != self._fi:
            self._close()
            self._f = open(self._name(block), "r+b")
            self._fi = block
        self._f.seek(offset)
        self._f.write(data)
        self.bytes_written += len(data)

    def erase(self, block):
        if block == self._fi:
            self._close()
        try:
            self._fill(block, "r+b")  # in place: the file keeps its size
        except OSError:
            self._fill(block, "wb")

    def sync(self):
        self.syncs += 1
        if self._f is not None:
            self._f.flush()  # littlefs commits here (rewrites the 4 KB block)


def open_default(files_path="/vegwlog", files=120):
    """The raw partition if the firmware has one, else littlefs sector files.
    The device's .kind says which ("partition" or "files")."""
    try:
        return PartitionBD()
    except (ImportError, OSError, AttributeError):
        return FileSectorsBD(files_path, files)
