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


def _fresh():
    bd = NorSim(6, 256)
    log = flashlog.FlashLog(bd, batch_size=96)
    for k in range(30):
        log.append(3, _payload(log.next_seq, 11))
        log.flush()
    return bd, log


def _spent(bd):
    return bd.prog_bytes + sum(bd.erases) * bd.block_size


def _check_after_reboot(bd, committed, acked, where):
    """Open the log, read everything into a list (a duplicate must show),
    check what was committed is there and nothing acked comes back, then
    append after the reboot: a reused sequence number must show too."""
    log = flashlog.FlashLog(bd, batch_size=96)
    assert bd.violations == 0, where
    assert flashlog.seq_diff(log.cursor, acked) >= 0, where
    got = []
    for s, t, p in log.read_from(1):
        assert p == _payload(s, len(p)) and len(p) >= 5, where
        got.append(s)
    assert len(got) == len(set(got)), (where, "duplicate records")
    for i in range(1, len(got)):
        assert flashlog.seq_diff(got[i], got[i - 1]) > 0, (where, "out of order")
    oldest = log.oldest_seq()
    for s in committed:
        if flashlog.seq_diff(s, oldest) >= 0:
            assert s in got, (where, s)
    for s, _, _ in log.unsent():
        assert flashlog.seq_diff(s, log.cursor) > 0, where
        break
    new = []
    for k in range(6):
        s = log.append(2, _payload(log.next_seq, 9 + k))
        assert s, where
        new.append(s)
    assert log.flush(), where
    for s in new:
        for old in got:
            assert flashlog.seq_diff(s, old) > 0, (where, "sequence reused", s, old)
    again = [s for s, t, p in flashlog.FlashLog(bd, batch_size=96).read_from(1)]
    assert len(again) == len(set(again)), (where, "duplicate after append")
    for s in new:
        assert s in again, (where, "lost after append", s)


def test_cut_at_every_byte_of_a_workload():
    # Measure the bytes the workload touches, then cut at each of them
    # (littlefs "reentrant" style), on a flash that already holds data and
    # wraps during the workload: a clean cut, and a cut that leaves the byte
    # in flight half programmed (some of its bits cleared) or half erased.
    bd, log = _fresh()
    before = _spent(bd)
    _workload(log)
    span = _spent(bd) - before
    assert span > 1000
    masks = (0x0F, 0xF0, 0x55, 0xAA, 0x01, 0x80)
    cuts = 0
    for cut in range(span):
        for partial in (0, masks[cut % len(masks)]):
            bd, log = _fresh()
            bd.cut_after(cut, partial)
            committed, acked = _workload(log)
            bd.reboot()
            _check_after_reboot(bd, committed, acked, (cut, partial))
            cuts += 1
    assert cuts == 2 * span


def test_cut_again_while_the_log_opens():
    # After a cut, opening the log may repair (erase or write); cut there too,
    # at every byte of that repair, then open once more.
    opened = 0
    for cut in range(0, 1400, 7):
        bd, log = _fresh()
        bd.cut_after(cut, 0x3C)
        committed, acked = _workload(log)
        bd.reboot()
        base = _spent(bd)
        flashlog.FlashLog(bd, batch_size=96)  # measure what opening writes
        repair = _spent(bd) - base
        for second in range(repair):
            bd, log = _fresh()
            bd.cut_after(cut, 0x3C)
            committed, acked = _workload(log)
            bd.reboot()
            bd.cut_after(second, 0xC3)
            try:
                flashlog.FlashLog(bd, batch_size=96)
            except OSError:
                pass  # power went while opening
            bd.reboot()
            _check_after_reboot(bd, committed, acked, (cut, second))
            opened += 1
    # the sweep must reach some repairs, or it proves nothing
    assert opened > 50, opened


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
