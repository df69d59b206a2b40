"""Power-cut tests of the flash log on the simulated NOR flash (CPython).

The shared module tests/shared/test_flashlog.py holds the random-cut harness
(`run_powercuts`) and runs a short version under both runtimes; here it runs
thousands of cuts, plus an exhaustive sweep that cuts at every byte of one
workload, and a file-backed flash image that survives the process.
"""
import os
import pathlib
import subprocess
import tempfile

import flashlog
from drivers.nor_sim import NorSim
from test_flashlog import _payload, run_powercuts
from vegw.runtime import micropython_binary, micropython_env

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_thousands_of_random_cuts_small_sectors():
    total = 0
    for seed in (1, 2, 3):
        rounds, torn, checked = run_powercuts(seed, 1500)
        assert torn > 300  # a good share of the cuts tore a record
        assert checked > 10000
        total += rounds
    assert total == 4500


def test_random_cuts_when_a_cut_erase_keeps_the_sector_header():
    rounds, torn, checked = run_powercuts(21, 1500, erase_from_end=True)
    assert torn > 300 and checked > 10000


def test_random_cuts_with_esp32_geometry():
    # 4 KB sectors as on the chip, a 1 KB RAM batch as in the firmware.
    rounds, torn, checked = run_powercuts(31, 300, blocks=6, bs=4096, batch=1024)
    assert checked > 1000


def _workload(log):
    """A fixed sequence of appends, flushes and acks; returns what was
    committed (flush returned) and the last acknowledged seq."""
    committed = []
    pend = []
    acked = 0
    for k in range(40):
        s = log.append(1 + k % 2, _payload(log.next_seq, 5 + (k * 7) % 30))
        if s:
            pend.append(s)
        if k % 3 == 2:
            if not log.flush():
                break
            committed += pend
            pend = []
        if k % 5 == 4 and committed:
            if log.mark_uploaded(committed[-2]):
                acked = committed[-2]
    return committed, acked


def test_cut_at_every_byte_of_a_workload():
    # Measure the bytes the workload touches, then cut at each of them
    # (littlefs "reentrant" style), on a flash that already holds data and
    # wraps during the workload.
    def fresh():
        bd = NorSim(6, 256)
        log = flashlog.FlashLog(bd, batch_size=96)
        for k in range(30):
            log.append(3, _payload(log.next_seq, 11))
            log.flush()
        return bd, log

    bd, log = fresh()
    before = bd.prog_bytes + sum(bd.erases) * 256
    _workload(log)
    span = bd.prog_bytes + sum(bd.erases) * 256 - before
    assert span > 1000
    for cut in range(0, span, 3):
        bd, log = fresh()
        bd.cut_after(cut)
        committed, acked = _workload(log)
        bd.reboot()
        log = flashlog.FlashLog(bd, batch_size=96)
        assert bd.violations == 0
        assert flashlog.seq_diff(log.cursor, acked) >= 0, cut
        got = {}
        for s, t, p in log.read_from(1):
            assert p == _payload(s, len(p)) and len(p) >= 5
            got[s] = t
        oldest = log.oldest_seq()
        for s in committed:
            if flashlog.seq_diff(s, oldest) >= 0:
                assert s in got, (cut, s)
        for s, _, _ in log.unsent():
            assert flashlog.seq_diff(s, log.cursor) > 0
            break


def test_file_backed_flash_survives_the_process():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "flash.bin")
        bd = NorSim(8, 512, path=path)
        log = flashlog.FlashLog(bd, batch_size=200)
        seqs = [log.append(1, b"rec%d" % k) for k in range(30)]
        assert log.flush()
        assert log.mark_uploaded(seqs[9])
        bd.close()
        assert os.path.getsize(path) == 8 * 512
        # a different runtime reads the same image: the MicroPython port
        code = (
            "import flashlog\nfrom drivers.nor_sim import NorSim\n"
            "log = flashlog.FlashLog(NorSim(8, 512, path=%r), batch_size=200)\n"
            "print(log.cursor, [p for s, t, p in log.unsent()][0], len(list(log.unsent())))\n" % path
        )
        out = subprocess.run(
            [micropython_binary(), "-c", code], env=micropython_env(), capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr + out.stdout
        assert out.stdout.split() == [str(seqs[9]), "b'rec10'", "20"]
        bd = NorSim(8, 512, path=path)
        log = flashlog.FlashLog(bd, batch_size=200)
        assert log.cursor == seqs[9]
        assert bd.violations == 0
        bd.close()


def test_shared_powercut_case_passes_under_micropython_with_esp32_heap():
    # The shared twin runs with the default heap; check the 64-bit plain
    # 111K heap (fewer objects) survives a longer run as well.
    code = (
        "import sys\nsys.path.append(%r)\nimport test_flashlog as T\n"
        "print(T.run_powercuts(77, 300))\n" % str(ROOT / "tests" / "shared")
    )
    out = subprocess.run(
        [micropython_binary(), "-X", "heapsize=111K", "-c", code],
        env=micropython_env(), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    rounds, torn, checked = eval(out.stdout.strip())
    assert rounds == 300 and torn > 50 and checked > 1000
