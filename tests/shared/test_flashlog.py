# Flash ring log (lib/flashlog.py) on the simulated NOR flash
# (drivers/nor_sim.py): runs under CPython and the MicroPython unix port.
import struct

import flashlog
import flashlog_crc
from drivers.nor_sim import NorSim
from _util import Rng, raises

FL = flashlog.FlashLog


def _payload(seq, n):
    # Content derived from the seq, so a record read back can be checked alone.
    return bytes((seq * 7 + i) & 0xFF for i in range(n))


def _all(log, start=1):
    return [(s, t, p) for s, t, p in log.read_from(start)]


def test_crc32_matches_reference_values_and_is_incremental():
    assert flashlog_crc.crc32_py(b"") == 0
    assert flashlog_crc.crc32_py(b"123456789") == 0xCBF43926  # the CRC-32 check value
    assert flashlog_crc.crc32_py(b"\x00" * 4) == 0x2144DF1C
    rng = Rng(5)
    for n in (1, 2, 7, 64, 300):
        d = rng.bytes(n)
        assert flashlog_crc.crc32_py(d) == flashlog.crc32(d)
        assert flashlog_crc.crc32_py(d[n // 2 :], flashlog_crc.crc32_py(d[: n // 2])) == flashlog_crc.crc32_py(d)


def test_seq_diff_is_wrap_safe():
    assert flashlog.seq_diff(5, 3) == 2
    assert flashlog.seq_diff(3, 5) == -2
    assert flashlog.seq_diff(2, 0xFFFFFFFE) == 4  # 2 comes after 0xFFFFFFFE
    assert flashlog.seq_diff(0xFFFFFFFE, 2) == -4


def test_nor_sim_enforces_programming_rules_and_counts_erases():
    bd = NorSim(4, 256)
    bd.prog(1, 10, b"\x0f\xf0")
    bd.prog(1, 10, b"\x0e\xf0")  # clears one more bit: allowed
    e = raises(OSError, bd.prog, 1, 10, b"\xff")  # would set bits: refused
    assert e.args[0] == 5
    assert bd.violations == 1
    buf = bytearray(3)
    bd.read(1, 10, buf)
    assert buf == bytearray(b"\x0e\xf0\xff")
    bd.erase(1)
    bd.read(1, 10, buf)
    assert buf == bytearray(b"\xff\xff\xff")
    assert list(bd.erases) == [0, 1, 0, 0]


def test_nor_sim_power_cut_stops_mid_write_until_reboot():
    bd = NorSim(4, 256)
    bd.cut_after(3)
    raises(OSError, bd.prog, 0, 0, b"\x00" * 8)
    assert not bd.powered
    buf = bytearray(8)
    bd.read(0, 0, buf)
    assert buf == bytearray(b"\x00\x00\x00\xff\xff\xff\xff\xff")
    raises(OSError, bd.prog, 0, 8, b"\x00")  # dead until reboot
    raises(OSError, bd.erase, 2)
    bd.reboot()
    bd.prog(0, 8, b"\x00")
    # an erase cut short leaves the start erased and the rest as it was
    bd.prog(3, 0, b"\x00" * 256)
    bd.cut_after(100)
    raises(OSError, bd.erase, 3)
    bd.reboot()
    b = bytearray(256)
    bd.read(3, 0, b)
    assert b[99] == 0xFF and b[100] == 0x00 and b[255] == 0x00


def test_append_flush_read_back_in_order_with_types():
    bd = NorSim(8, 256)
    log = FL(bd, batch_size=128)
    s0 = log.next_seq  # seq 1 went to the boot marker (internal, never read)
    seqs = [log.append(1 + k % 3, _payload(s0 + k, k % 20)) for k in range(40)]
    assert seqs == list(range(s0, s0 + 40))
    got = _all(log)  # 40 records: most flushed on batch overflow, the rest from RAM
    assert [s for s, _, _ in got] == seqs
    for s, t, p in got:
        assert t == 1 + (s - s0) % 3
        assert p == _payload(s, (s - s0) % 20)
    assert log.flush()
    assert _all(log) == got
    assert [s for s, _, _ in log.read_from(seqs[36])] == seqs[36:]
    assert bd.violations == 0


def test_reader_survives_a_flush_between_steps():
    bd = NorSim(8, 256)
    log = FL(bd, batch_size=200)
    seqs = [log.append(1, _payload(k + 1, 10)) for k in range(6)]
    it = log.read_from(1)
    first = [next(it)[0], next(it)[0]]  # taken from RAM
    assert log.flush()  # moves all six to flash behind the reader
    rest = [s for s, _, _ in it]
    assert first + rest == seqs


def test_reopen_recovers_flushed_records_and_never_reuses_a_seq():
    bd = NorSim(8, 256)
    log = FL(bd, batch_size=128)
    seqs = [log.append(2, _payload(log.next_seq, 9)) for k in range(25)]
    assert log.flush()
    lost = [log.append(2, b"in ram only") for _ in range(3)]
    log = FL(bd, batch_size=128)  # reboot: RAM state gone
    got = _all(log)
    assert [s for s, _, _ in got] == seqs
    assert all(p == _payload(s, 9) for s, _, p in got)
    s = log.append(2, b"after reboot")
    assert flashlog.seq_diff(s, max(lost)) > 0  # seqs of lost RAM records are skipped
    assert log.flush()
    assert _all(log)[-1][2] == b"after reboot"
    assert log.torn == 0 and bd.violations == 0


def test_wrap_around_drops_oldest_sector_and_counts_unsent_loss():
    bd = NorSim(6, 256)  # 4 ring sectors, 3 hold data
    log = FL(bd, batch_size=64)
    for k in range(200):
        log.append(1, _payload(log.next_seq, 20))  # 32 bytes a record, 7 a sector
        log.flush()
    top = log.next_seq - 1
    got = _all(log)
    seqs = [s for s, _, _ in got]
    assert seqs == list(range(seqs[0], top + 1))
    assert [p for _, _, p in got] == [_payload(s, 20) for s in seqs]
    assert seqs[0] == log.oldest_seq()
    assert len(seqs) >= 2 * 7 and len(seqs) <= 3 * 7
    st = log.stats()
    assert st["overwritten"] == 200 - len(seqs)
    assert st["overwritten_unsent"] == st["overwritten"]  # nothing was acknowledged
    assert log.capacity() == 3 * (256 - 20)
    # with an up-to-date cursor nothing unsent is lost
    assert log.mark_uploaded(top)
    before = log.overwritten_unsent
    for k in range(40):
        s = log.append(1, _payload(k, 20))
        log.flush()
        assert log.mark_uploaded(s)
    assert log.overwritten_unsent == before
    assert log.overwritten > st["overwritten"]


def test_torn_record_is_skipped_and_counted():
    bd = NorSim(8, 256)
    log = FL(bd, batch_size=128)
    seqs = [log.append(1, _payload(k + 1, 30)) for k in range(3)]
    assert log.flush()
    log.append(1, _payload(4, 30))
    bd.cut_after(20)  # header + part of the payload of the fourth record
    assert not log.flush()
    bd.reboot()
    log = FL(bd, batch_size=128)
    assert log.torn == 1
    assert [s for s, _, _ in _all(log)] == seqs
    s = log.append(1, _payload(99, 5))
    assert log.flush()
    before = log.bad_reads
    got = _all(log)
    assert [x[0] for x in got] == seqs + [s]
    assert log.bad_reads == before + 1  # the reader stepped over the torn record
    assert bd.violations == 0


def test_cut_in_commit_crc_makes_record_torn_not_corrupt():
    bd = NorSim(8, 256)
    log = FL(bd, batch_size=128)
    s = log.append(1, _payload(1, 10))
    log.flush()
    log.append(1, _payload(2, 10))
    bd.cut_after(8 + 10 + 2)  # header and payload done, 2 of 4 CRC bytes
    log.flush()
    bd.reboot()
    log = FL(bd, batch_size=128)
    assert [s for s, _, _ in _all(log)] == [s]
    assert log.torn == 1


def test_garbage_in_head_sector_closes_it_without_breaking_nor_rules():
    bd = NorSim(8, 256)
    log = FL(bd, batch_size=128)
    log.append(1, b"good")
    assert log.flush()
    blk = log.head + 2
    off = log._wpos
    bd.poke(blk, off, b"\x13\x37")  # bit rot right after the last record
    log = FL(bd, batch_size=128)
    assert log.closed_sectors == 1
    log.append(1, b"next")
    assert log.flush()
    assert [p for _, _, p in _all(log)] == [b"good", b"next"]
    assert bd.violations == 0


def test_upload_cursor_persists_across_reboots_and_rotates():
    bd = NorSim(8, 256)  # 30 cursor slots a sector: rotation after 30 marks
    log = FL(bd, batch_size=128)
    last = 0
    for k in range(100):
        last = log.append(1, b"x")
        assert log.mark_uploaded(last)  # a seq still in RAM may be acknowledged
        if k % 17 == 0:
            log = FL(bd, batch_size=128)
            log.flush()
            assert log.cursor == last
    log.flush()
    log = FL(bd, batch_size=128)
    assert log.cursor == last
    assert list(log.unsent()) == []
    assert bd.erases[0] >= 1 and bd.erases[1] >= 1  # both cursor sectors used
    assert not log.mark_uploaded(log.next_seq + 5)  # never handed out
    assert log.bad_marks == 1
    assert log.mark_uploaded(3)  # older than the cursor: nothing to do
    assert log.cursor == last


def test_unsent_yields_only_records_after_the_cursor():
    bd = NorSim(8, 256)
    log = FL(bd, batch_size=128)
    seqs = [log.append(1, _payload(k + 1, 4)) for k in range(10)]
    log.flush()
    assert log.stats()["unsent"] == 11  # 10 records and the boot marker
    assert log.mark_uploaded(seqs[5])
    assert log.stats()["unsent"] == 4
    log = FL(bd, batch_size=128)
    assert [s for s, _, _ in log.unsent()] == seqs[6:]
    assert log.stats()["unsent"] >= 4  # an upper bound: the reboot's seq gap counts


def test_wear_is_even_over_many_wraps():
    bd = NorSim(10, 256)
    log = FL(bd, batch_size=256)
    for k in range(1500):
        log.append(1, _payload(k, 17))
        if k % 5 == 4:
            log.flush()
        if k % 300 == 299:  # a few reboots in between
            log.flush()
            log = FL(bd, batch_size=256)
    ring = bd.erases[2:]
    assert min(ring) >= 10
    assert max(ring) - min(ring) <= 2
    counts = FL(bd).erase_counts()  # persisted in the sector headers
    assert max(counts) - min(counts) <= 2
    assert bd.violations == 0


def test_a_flush_waits_for_at_most_one_erase():
    # ESP32: a 4 KB erase takes ~45 ms; the loop budget is 50 ms.
    bd = NorSim(8, 256)
    log = FL(bd, batch_size=96)
    worst = 0
    for k in range(400):
        log.append(1, _payload(k, k % 30))
        if k % 3 == 2:
            before = sum(bd.erases)
            assert log.flush()
            worst = max(worst, sum(bd.erases) - before)
    assert worst == 1
    assert log.erases >= 20


def test_bad_input_is_refused_and_counted_never_raised():
    bd = NorSim(6, 256)
    log = FL(bd, batch_size=64)
    assert log.append(1, bytes(64 - 12 + 1)) == 0  # larger than the RAM batch
    assert log.append(300, b"x") == 0
    assert log.append(0, b"x") == 0  # type 0 is the internal boot marker
    assert log.dropped == 3
    assert log.append(1, bytes(64 - 12)) > 0  # the largest that fits
    assert log.flush()
    assert _all(log)[0][2] == bytes(52)


def test_device_errors_are_counted_and_records_kept_queued():
    bd = NorSim(8, 256)
    log = FL(bd, batch_size=128)
    log.append(1, b"a")
    bd.cut_after(0)  # flash dies before the first byte
    assert not log.flush()
    assert log.io_errors == 1
    assert log.pending() > 0
    bd.reboot()  # flash works again (same RAM: a transient error)
    assert log.flush()
    assert [p for _, _, p in _all(log)] == [b"a"]


def test_find_before_locates_key_frames():
    bd = NorSim(8, 256)
    log = FL(bd, batch_size=128)
    seqs = []
    for k in range(30):
        seqs.append(log.append(7 if k % 10 == 0 else 8, b"frame"))
        log.flush()
    assert log.find_before(seqs[24], 7) == seqs[20]
    assert log.find_before(seqs[20], 7) == seqs[20]
    assert log.find_before(seqs[19], 7) == seqs[10]
    assert log.find_before(seqs[29], 9) == 0


def test_empty_and_blank_device():
    bd = NorSim(4, 256)
    log = FL(bd)
    assert log.opened_ok
    assert list(log.read_from(1)) == []  # only the boot marker is stored
    assert log.next_seq == 2
    assert log.flush()  # nothing to do
    assert list(bd.erases) == [0, 0, 1, 1]  # first sector, and the one kept free


def run_powercuts(seed, rounds, blocks=8, bs=256, batch=96, erase_from_end=False):
    """Cut power at a random byte of the write traffic, `rounds` times; after
    each cut reboot (fresh FlashLog on the same flash) and check:
      - no NOR rule was ever violated (the simulator is strict);
      - every record whose flush() returned True before the cut, and that is
        not older than the oldest sector kept, reads back with its payload;
      - nothing read back was never appended, nor comes out of order;
      - the persisted cursor is at least the last mark_uploaded() that
        returned True (nothing acknowledged is sent again) and unsent()
        starts right after it;
      - no seq handed out before the cut is given to another record.
    Returns (rounds, torn records seen, records checked)."""
    rng = Rng(seed)
    bd = NorSim(blocks, bs, erase_from_end=erase_from_end)
    log = FL(bd, batch_size=batch)
    sent = {}  # seq -> payload length, for every seq handed out (pruned)
    inflight = []  # seqs appended since the last flush() that returned True
    committed = {}  # seqs that were in a flush() that returned True (pruned)
    acked = 0
    top = 0  # highest seq handed out
    torn = 0
    checked = 0
    sd = flashlog.seq_diff
    for _ in range(rounds):
        bd.cut_after(rng.below(3 * bs))
        while bd.powered:
            op = rng.below(10)
            if op < 6:
                n = rng.below(40)
                s = log.append(1 + rng.below(3), _payload(log.next_seq, n))
                if s:
                    assert top == 0 or sd(s, top) > 0
                    top = s
                    sent[s] = n
                    inflight.append(s)
            elif op < 8:
                if log.flush():
                    for s in inflight:
                        committed[s] = 1
                    inflight = []
            else:
                last = top
                for s in inflight:  # may only acknowledge what was flushed
                    last = s - 1
                    break
                if sd(last, acked) > 0:
                    s = acked + 1 + rng.below(last - acked)
                    if log.mark_uploaded(s):
                        acked = s
        bd.reboot()
        inflight = []
        log = FL(bd, batch_size=batch)
        torn += log.torn
        assert bd.violations == 0
        assert log.opened_ok
        assert sd(log.cursor, acked) >= 0 and sd(log.cursor, top) <= 0
        assert sd(log.next_seq, top) > 0
        oldest = log.oldest_seq()
        prev = 0
        seen = {}
        for s, t, p in log.read_from(oldest or 1):
            assert s in sent, "phantom record %d" % s
            assert p == _payload(s, sent[s])
            assert 1 <= t <= 3
            assert prev == 0 or sd(s, prev) > 0
            prev = s
            seen[s] = 1
        for s in committed:
            if oldest and sd(s, oldest) >= 0:
                assert s in seen, "committed record %d lost" % s
                checked += 1
        u = None
        for s, _, _ in log.unsent():
            u = s
            break
        assert u is None or sd(u, log.cursor) > 0
        # prune what the ring can no longer hold (bounded memory)
        if oldest:
            for s in [s for s in sent if sd(s, oldest) < 0]:
                del sent[s]
            for s in [s for s in committed if sd(s, oldest) < 0]:
                del committed[s]
        acked = log.cursor  # the log's cursor is the truth from now on
    return rounds, torn, checked


def test_power_cut_at_random_bytes_small():
    r, torn, checked = run_powercuts(11, 120)
    assert torn > 0  # some cuts did land inside a record
    assert checked > 0
    r, torn, checked = run_powercuts(12, 60, erase_from_end=True)
    assert torn > 0 and checked > 0
