"""The ESP32 block devices of drivers/flash_esp32.py on the host: the
littlefs-file variant over a temporary directory (CPython and the MicroPython
port), and the raw-partition variant over a fake `esp32` module that keeps
NOR rules (writeblocks with an offset programs only; ioctl 6 erases)."""
import os
import subprocess
import sys
import tempfile
import types

import flashlog
from drivers import flash_esp32
from drivers.nor_sim import NorSim
from vegw.runtime import micropython_binary, micropython_env


def test_file_sectors_preallocate_and_carry_a_log_across_reopen():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "vegwlog")
        bd = flash_esp32.FileSectorsBD(path, block_count=6)
        names = sorted(os.listdir(path))
        assert names == ["s%03d.bin" % i for i in range(6)]
        assert all(os.path.getsize(os.path.join(path, n)) == 4096 for n in names)
        log = flashlog.FlashLog(bd, batch_size=512)
        seqs = [log.append(1, b"minute %d" % k) for k in range(50)]
        assert log.flush()
        assert log.mark_uploaded(seqs[19])
        assert bd.syncs >= 2
        bd = flash_esp32.FileSectorsBD(path, block_count=6)  # reboot
        log = flashlog.FlashLog(bd, batch_size=512)
        assert [p for _, _, p in log.unsent()] == [b"minute %d" % k for k in range(20, 50)]
        # an erase cut short could leave a short file: it reads as erased
        with open(os.path.join(path, "s005.bin"), "wb") as f:
            f.write(b"\x00" * 10)
        buf = bytearray(16)
        bd.read(5, 0, buf)
        assert buf == bytearray(b"\x00" * 10 + b"\xff" * 6)
        bd = flash_esp32.FileSectorsBD(path, block_count=6)
        assert os.path.getsize(os.path.join(path, "s005.bin")) == 4096  # re-preallocated


def test_file_sectors_under_micropython():
    with tempfile.TemporaryDirectory() as d:
        code = (
            "import flashlog\nfrom drivers import flash_esp32 as F\n"
            "bd = F.FileSectorsBD(%r, 5)\nlog = flashlog.FlashLog(bd)\n"
            "s = [log.append(2, b'x%%d' %% k) for k in range(300)]\nlog.flush()\nlog.mark_uploaded(s[-3])\n"
            "log = flashlog.FlashLog(F.FileSectorsBD(%r, 5))\n"
            "print([p for _, _, p in log.unsent()], log.stats()['live_sectors'])\n" % (d + "/lg", d + "/lg")
        )
        out = subprocess.run([micropython_binary(), "-X", "heapsize=111wK", "-c", code], env=micropython_env(),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr + out.stdout
        assert out.stdout.split() == ["[b'x298',", "b'x299']", "2"]


class _FakePartition:
    # esp32.Partition's block interface over a strict NorSim.
    TYPE_DATA = 1

    def __init__(self, nor):
        self.nor = nor

    def readblocks(self, block, buf, offset=0):
        self.nor.read(block, offset, buf)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:  # the simple interface erases first
            self.nor.erase(block)
            offset = 0
        self.nor.prog(block, offset, buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.nor.block_count
        if op == 5:
            return self.nor.block_size
        if op == 6:
            self.nor.erase(arg)
            return 0
        return None


def test_partition_adapter_maps_the_contract_onto_esp32_partition():
    nor = NorSim(8, 4096)
    fake = types.ModuleType("esp32")

    class Partition:
        TYPE_DATA = 1

        @staticmethod
        def find(type, label=None):
            return [_FakePartition(nor)] if label == "vegwlog" else []

    fake.Partition = Partition
    sys.modules["esp32"] = fake
    try:
        bd = flash_esp32.PartitionBD()
        assert (bd.block_size, bd.block_count) == (4096, 8)
        log = flashlog.FlashLog(bd)
        for k in range(400):
            log.append(1, b"%060d" % k)
            if k % 10 == 9:
                assert log.flush()
        log = flashlog.FlashLog(flash_esp32.PartitionBD())
        got = [p for _, _, p in log.read_from(1)]
        assert got[-1] == b"%060d" % 399 and len(got) > 200
        assert nor.violations == 0  # never asked the flash to set a bit
        assert flash_esp32.open_default().kind == "partition"
        try:
            flash_esp32.PartitionBD("nope")
            raise AssertionError("no partition should raise OSError")
        except OSError as e:
            assert e.args[0] == 19
    finally:
        del sys.modules["esp32"]


def test_open_default_falls_back_to_files_without_esp32():
    with tempfile.TemporaryDirectory() as d:
        bd = flash_esp32.open_default(os.path.join(d, "lg"), files=4)
        assert bd.kind == "files" and bd.block_count == 4
