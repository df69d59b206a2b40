# esp32 module for `vegw doctor` tests on the stand-in board: the partition
# table of hw/partitions.csv, partition contents from hw/<label>.bin, the IDF
# heap regions of hw/heap.json.
import json

HEAP_DATA = 4


def idf_heap_info(caps):
    with open("hw/heap.json") as f:
        return [tuple(r) for r in json.load(f)]


def _rows():
    out = []
    with open("hw/partitions.csv") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                c = [x.strip() for x in line.split(",")]
                out.append((c[0], c[1], int(c[3], 16), int(c[4], 16)))
    return out


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, which, row=None):
        if row is None:
            row = [r for r in _rows() if r[1] == "app"][0]
        self.row = row

    @staticmethod
    def find(type=0, subtype=255, label=None):
        want = "app" if type == 0 else "data"
        return [Partition(0, r) for r in _rows() if r[1] == want and (label is None or r[0] == label)]

    def info(self):
        return (0 if self.row[1] == "app" else 1, 0, self.row[2], self.row[3], self.row[0], False)

    def ioctl(self, op, arg):
        if op == 4:
            return self.row[3] // 4096
        if op == 5:
            return 4096
        return 0

    def readblocks(self, block, buf, offset=0):
        with open("hw/%s.bin" % self.row[0], "rb") as f:
            f.seek(block * 4096 + offset)
            data = f.read(len(buf))
        buf[:len(data)] = data
