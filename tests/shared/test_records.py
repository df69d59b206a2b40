# Compact record coding (lib/records.py): runs under CPython and MicroPython.
import records as R
import log_windows
import records_dec
import flashlog
from drivers.nor_sim import NorSim
from _util import Rng

LAYOUT = [
    ("house", ["V", "I", "P", "CE", "SOC", "TTG", "Alarm", "AR"]),
    ("solar", ["V", "VPV", "PPV", "IL", "LOAD", "CS", "ERR", "H20"]),
    ("inverter", ["AC_OUT_V", "AC_OUT_I", "AC_OUT_S", "MODE", "CS"]),
    ("shunt", ["V", "I", "SOC", "my_extra"]),
]


def test_resolution_table():
    assert R.res("V") == (2, R.KIND_ANALOG)
    assert R.res("I") == (1, R.KIND_ANALOG)
    assert R.res("PPV") == (0, R.KIND_ANALOG)
    assert R.res("AC_OUT_V") == (1, R.KIND_ANALOG)
    assert R.res("CE") == (1, R.KIND_LAST)
    assert R.res("SOC") == (1, R.KIND_LAST)
    assert R.res("TTG") == (0, R.KIND_LAST)
    assert R.res("H20") == (2, R.KIND_LAST)
    assert R.res("CS") == (0, R.KIND_STATE)
    assert R.res("LOAD") == (0, R.KIND_BOOL)
    assert R.res("no_such_field") == (2, R.KIND_ANALOG)
    assert len(records_dec.codes()) < 255 and len(set(records_dec.codes())) == len(records_dec.codes())


def test_scaling_rounds_half_away_and_survives_bad_input():
    assert R.to_scaled(26.53, 2) == 2653
    assert R.to_scaled(-1.25, 1) == -13
    assert R.to_scaled(1.25, 1) == 13
    assert R.to_scaled(True, 0) == 1 and R.to_scaled(False, 0) == 0
    assert R.to_scaled(None, 2) is None
    assert R.to_scaled("12", 2) is None
    assert R.to_scaled(float("inf"), 2) is None
    assert records_dec.from_scaled(2653, 2) == 26.53
    assert records_dec.from_scaled(7, 0) == 7
    assert records_dec.from_scaled(1, 0, R.KIND_BOOL) is True
    assert records_dec.from_scaled(None, 2) is None


def test_agg_min_avg_max_last_and_skips_text():
    # the window of one device (log_windows.Agg: device_state.Device.agg)
    a = log_windows.Agg()
    assert a.take() is None  # nothing came this window

    def add(vals):
        for f in vals:
            a.add(f, vals[f])

    add({"V": 26.50, "I": -1.0, "CS": 3, "LOAD": True})
    add({"V": 26.53, "I": 2.0, "CS": 5, "CE": -3.25})
    add({"V": 26.51, "I": "junk", "FW": "0415"})  # text is not logged
    fields, row = a.take()
    assert fields == ["CE", "CS", "I", "LOAD", "V"]
    got = dict(zip(fields, row))
    assert got["V"] == (2650, 2651, 2653)  # avg 2651.33 -> 2651
    assert got["I"] == (-10, 5, 20)  # two samples: (-10 + 20) / 2
    assert got["CS"] == 5  # last value
    assert got["LOAD"] == 1
    assert got["CE"] == -33  # -3.25 Ah at 0.1 Ah, half away from zero
    add({"V": 27.0})
    assert a.take() == (["CE", "CS", "I", "LOAD", "V"], [None, None, None, None, (2700, 2700, 2700)])


def _rand_rows(rng, L, prev, absent_p=20):
    rows = []
    for d, (_, fs) in enumerate(L):
        if rng.below(100) < absent_p // 4:
            rows.append(None)
            continue
        row = []
        for i, f in enumerate(fs):
            dec, kind = R.res(f)
            if rng.below(100) < absent_p // 5:
                row.append(None)
                continue
            base = prev[d][i]
            step = rng.below(40) - 20 if rng.below(10) else rng.below(100000) - 50000
            base += step
            prev[d][i] = base
            if kind == R.KIND_ANALOG:
                row.append((base - rng.below(30), base, base + rng.below(50)))
            elif kind == R.KIND_BOOL:
                row.append(rng.below(2))
            else:
                row.append(base if kind == R.KIND_LAST or rng.below(4) else base % 7)
        rows.append(row)
    return rows


def _expect(L, t, rows):
    devs = {}
    for d, (name, fs) in enumerate(L):
        if rows[d] is None:
            continue
        vals = {}
        for i, f in enumerate(fs):
            v = rows[d][i]
            if v is None:
                continue
            dec, kind = R.res(f)
            if kind == R.KIND_ANALOG:
                vals[f] = [records_dec.from_scaled(x, dec) for x in v]
            else:
                vals[f] = records_dec.from_scaled(v, dec, kind)
        devs[name] = vals
    return {"t": t, "devices": devs}


def _roundtrip(seed, minutes, per_record, key_every, absent_p, keep=False):
    """Encode random minutes, decode every record as it comes out and compare
    with what went in (exact, at each field's resolution). Returns (minutes
    checked, record count, encoder, the records if keep)."""
    rng = Rng(seed)
    enc = R.MinuteEncoder(LAYOUT, key_every=key_every, per_record=per_record)
    dec = records_dec.MinuteDecoder()
    prev = [[rng.below(3000) for _ in fs] for _, fs in LAYOUT]
    t = 1700000000
    pending = []  # expected minutes not yet seen decoded (bounded by a block)
    checked = 0
    nrec = 0
    kept = []

    def check(recs):
        n = 0
        for rtype, p in recs:
            if keep:
                kept.append((rtype, p))
            assert len(p) <= 1000
            out = dec.decode(rtype, p)
            assert out is not None, (dec.bad, dec.orphans)
            for minute in out:
                w = pending.pop(0)
                assert minute["t"] == w["t"]
                assert minute["devices"] == w["devices"], (minute, w)
                n += 1
        return n

    for m in range(minutes):
        t += 60 if rng.below(8) else 60 + rng.below(200) - 30
        rows = _rand_rows(rng, LAYOUT, prev, absent_p)
        pending.append(_expect(LAYOUT, t, rows))
        recs = enc.add(t, rows)
        nrec += len(recs)
        checked += check(recs)
    last = enc.take()
    if last:
        nrec += 1
        checked += check([last])
    assert not pending
    assert enc.refused == 0
    return checked, nrec, enc, kept


def test_minute_blocks_round_trip_exactly():
    checked, nrec, enc, _ = _roundtrip(1, 120, 5, 30, 20)
    assert checked == 120
    # 5 minutes a record (more records when a big jump forces a key frame)
    assert 24 <= nrec <= 40
    assert enc.keys >= 4  # every 30 minutes at least


def test_round_trip_one_minute_records_and_rare_keys():
    checked, nrec, enc, _ = _roundtrip(2, 90, 1, 255, 5)
    assert checked == 90 and nrec == 90


def test_flat_minutes_cost_a_few_bytes():
    L = [("house", ["V", "I", "P", "CS", "SOC"]), ("solar", ["V", "PPV", "CS"])]
    enc = R.MinuteEncoder(L, per_record=10)
    rows = [[(2650, 2650, 2650), (-12, -12, -12), (-32, -32, -32), 3, 800],
            [(2652, 2652, 2652), (0, 0, 0), 0]]
    recs = []
    for m in range(10):
        recs += enc.add(1700000000 + 60 * m, rows)
    assert len(recs) == 1
    rtype, p = recs[0]
    assert rtype == R.T_KEY
    key_len = 4 + 1 + (1 + 5 + 1 + 5) + (1 + 5 + 1 + 3) + 1 + 1  # t, ndev, names+codes, present bytes
    # 9 flat delta minutes: dt 1 + same 1 + per device (state bit + 3 bits a
    # flat analog + 1 bit a still last-value) = 2 + (1+9+1) + (1+6) = 20 bits
    assert len(p) <= key_len + 40 + 1 + (9 * 20 + 7) // 8


def test_delta_block_without_key_or_after_a_lost_block_is_refused():
    enc = R.MinuteEncoder(LAYOUT[:1], per_record=2)
    row = [[(2650, 2651, 2652), (10, 12, 15), (5, 6, 7), -30, 900, None, 0, 0]]
    recs = []
    for m in range(8):
        recs += enc.add(1700000000 + 60 * m, row)
    assert [r[0] for r in recs] == [R.T_KEY, R.T_DELTA, R.T_DELTA, R.T_DELTA]
    dec = records_dec.MinuteDecoder()
    assert dec.decode(recs[1][0], recs[1][1]) is None  # no key yet
    assert dec.orphans == 1
    assert len(dec.decode(*recs[0])) == 2
    assert dec.decode(*recs[2]) is None  # recs[1] missing: frame number mismatch
    assert dec.orphans == 2


def test_decoder_never_raises_on_garbage_or_truncation():
    _, _, _, recs = _roundtrip(3, 20, 5, 10, 10, keep=True)
    rng = Rng(9)
    for rtype, p in recs:
        for cut in range(0, len(p), 3):
            dec = records_dec.MinuteDecoder()
            dec.decode(recs[0][0], recs[0][1])
            out = dec.decode(rtype, p[:cut])
            assert out is None or isinstance(out, list)
    dec = records_dec.MinuteDecoder()
    for _ in range(200):
        out = dec.decode(R.T_KEY if rng.below(2) else R.T_DELTA, rng.bytes(rng.below(60)))
        assert out is None or isinstance(out, list)
    assert dec.decode(99, b"x") is None


def test_encoder_refuses_bad_layout_and_rows_without_raising():
    enc = R.MinuteEncoder([("", ["V"])])
    assert enc.add(1700000000, [[(1, 1, 1)]]) == [] and enc.refused == 1
    enc = R.MinuteEncoder(LAYOUT[:1])
    assert enc.add(1700000000, []) == []  # wrong device count
    assert enc.add(1700000000, [[(3, 2, 1)] + [None] * 7]) == []  # min > max
    assert enc.add("noon", [None]) == []
    assert enc.refused == 3
    out = enc.add(1700000060, [[(1, 2, 3)] + [None] * 7])  # still usable
    assert out == []
    assert enc.add(1700000120, [[5] + [None] * 7]) == []  # bad row after a good minute
    assert enc.refused == 4
    enc.add(1700000180, [[(1, 2, 4)] + [None] * 7])
    rtype, p = enc.take()
    assert rtype == R.T_KEY
    minutes = records_dec.MinuteDecoder().decode(rtype, p)  # the good minutes were kept
    assert [m["t"] for m in minutes] == [1700000060, 1700000180]
    assert minutes[1]["devices"]["house"]["V"] == [0.01, 0.02, 0.04]


def test_jump_too_large_for_a_delta_starts_a_key_block():
    L = [("solar", ["H19", "PPV"])]
    enc = R.MinuteEncoder(L, per_record=10)
    recs = enc.add(1700000000, [[5, (1, 2, 3)]])
    recs += enc.add(1700000060, [[5 + (1 << 40), (1, 2, 3)]])  # residual > 32 bits
    recs += enc.add(1700000120, [[6 + (1 << 40), (1, 2, 3)]])
    recs.append(enc.take())
    assert [r[0] for r in recs] == [R.T_KEY, R.T_KEY]
    dec = records_dec.MinuteDecoder()
    out = dec.decode(*recs[0]) + dec.decode(*recs[1])
    assert [m["devices"]["solar"]["H19"] for m in out] == [0.05, (5 + (1 << 40)) / 100, (6 + (1 << 40)) / 100]


def test_large_state_change_round_trips():
    # a state jumping by 2**19 needs the Exp-Golomb escape; by 2**40 a key frame
    L = [("d", ["CS", "V"])]
    enc = R.MinuteEncoder(L, per_record=4)
    vals = [0, 524288, 524288 + (1 << 40), -7]
    recs = []
    for m, v in enumerate(vals):
        recs += enc.add(1700000000 + 60 * m, [[v, (1, 1, 1)]])
    last = enc.take()
    if last:
        recs.append(last)
    dec = records_dec.MinuteDecoder()
    out = []
    for r in recs:
        out += dec.decode(*r)
    assert [m["devices"]["d"]["CS"] for m in out] == vals


def test_unknown_field_keeps_its_name_and_resolution():
    L = [("x", ["my_extra", "V"])]
    enc = R.MinuteEncoder(L, per_record=3)
    recs = []
    for m in range(3):
        recs += enc.add(1700000000 + 60 * m, [[(100, 123 + m, 150), (2600, 2600, 2601)]])
    dec = records_dec.MinuteDecoder()
    out = dec.decode(*recs[0])
    assert out[2]["devices"]["x"]["my_extra"] == [1.0, 1.25, 1.5]


def test_value_sets_events_counters_round_trip():
    p = records_dec.encode_values(["V", "I", "CS", "LOAD", "uptime", "queue_drops", "TTG"],
                        [26.53, -3.2, 4, True, 86400, 3, None], t=1700000000)
    t, vals = records_dec.decode_values(p)
    assert t == 1700000000
    assert vals == {"V": 26.53, "I": -3.2, "CS": 4, "LOAD": True, "uptime": 86400,
                    "queue_drops": 3.0, "TTG": None}
    e = records_dec.encode_event(1700000123, "house", "low_bank", 1, ["V"], [23.91])
    assert records_dec.decode_event(e) == {"t": 1700000123, "device": "house", "event": "low_bank",
                                 "state": 1, "values": {"V": 23.91}}
    c = records_dec.encode_counters(1700000200, ["torn", "erases"], [1, 20])
    assert records_dec.decode_values(c) == (1700000200, {"torn": 1.0, "erases": 20.0})
    assert records_dec.decode_values(b"\x05\x09") is None
    assert records_dec.decode_event(b"\x01\xff") is None
    assert records_dec.decode_values(records_dec.encode_values(["V"], ["junk"], t=-5)) == (0, {"V": None})


def test_replay_from_the_log_decodes_from_the_previous_key():
    bd = NorSim(10, 512)
    log = flashlog.FlashLog(bd, batch_size=400)
    L = [("house", ["V", "I", "SOC"])]
    enc = R.MinuteEncoder(L, key_every=20, per_record=5)
    seqs = []
    for m in range(60):
        row = [[(2600 + m, 2601 + m, 2603 + m), (m - 5, m, m + 4), 500 + m]]
        for rt, p in enc.add(1700000000 + 60 * m, row):
            seqs.append(log.append(rt, p))
        if m == 33:
            log.append(R.T_EVENT, records_dec.encode_event(1700000000 + 60 * m, "house", "low", 1))
    log.flush()
    assert len(seqs) == 12
    # the uplink acknowledged up to the 8th block (minute 39): replay the rest
    assert log.mark_uploaded(seqs[7])
    out = list(records_dec.replay(log, log.cursor + 1))
    assert [s for s, _, _ in out] == seqs[8:]
    minutes = [m for s, rt, dec in out for m in dec]
    assert minutes[0]["t"] == 1700000000 + 60 * 40
    assert minutes[0]["devices"]["house"] == {"V": [26.4, 26.41, 26.43], "I": [3.5, 4.0, 4.4], "SOC": 54.0}
    assert len(minutes) == 20
    # from further back, the event record comes with its block
    kinds = [rt for s, rt, _ in records_dec.replay(log, seqs[5])]
    assert R.T_EVENT in kinds
