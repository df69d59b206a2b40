# Issue 17.1: the gateway across the setting of an unset clock (power-on at
# 2000-01-01, then NTP or the modem's time): no year-2000 "ts" goes out,
# timers do not fire at the jump, and the records made before it are
# converted by the jump (timefix.fix_record) to their true times.
import json

import gateway
import records
import records_dec
import timefix
from test_gateway import block, drain, feeder, make, states

MP_HEAPSIZE = "1M"

UNSET = 946684800  # the board's clock after power-on
TRUE0 = 1767225600  # 2026-01-01: the true time at power-on
DELTA = TRUE0 - UNSET


def _run():
    gw, log = make(rules=["low: alarm: house.V < 12.0 for 60s clear 12.4"], log_interval=60)
    gw.clock_ok = False
    feed = feeder(gw, "house")
    # 0..129 s after power-on on the unset clock; V low from 100 s (the rule's
    # 60 s run across the jump)
    for s in range(0, 130):
        feed(block([(b"V", b"11900" if s >= 100 else b"12600")]), UNSET + s)
        gw.tick(UNSET + s)
    early = drain(gw)
    early.append(("status", json.dumps(gw.status(UNSET + 129))))
    gw.clock_set(DELTA, TRUE0 + 130, 1)
    for s in range(130, 400):
        feed(block([(b"V", b"11900" if s < 300 else b"12600")]), TRUE0 + s)
        gw.tick(TRUE0 + s)
    gw.close(TRUE0 + 400)
    return gw, log, early, drain(gw)


def test_nothing_goes_out_with_a_year_2000_time():
    gw, log, early, late = _run()
    assert states(early, "house") and all("ts" not in s for s in states(early, "house"))
    st = json.loads(early[-1][1])
    assert "ts" not in st and st["uptime_s"] == 129
    assert all(s["ts"] >= TRUE0 for s in states(late, "house") if "ts" in s)
    assert gw.status(TRUE0 + 400)["ts"] == TRUE0 + 400


def test_timers_run_across_the_jump():
    gw, log, early, late = _run()
    evs = [json.loads(p) for seq, ty, p in log.read_from(1) if ty == gateway.REC_EVENT]
    raised = [e for e in evs if e.get("event") == "raised" and e.get("rule") == "low"]
    cleared = [e for e in evs if e.get("event") == "cleared" and e.get("rule") == "low"]
    # low since 100 s: raised at 160 s (after the jump), not at the jump
    assert len(raised) == 1 and raised[0]["t"] == TRUE0 + 160, raised
    assert cleared and cleared[0]["t"] == TRUE0 + 300
    # the device never went stale, though the clock jumped 26 years
    assert not any(e.get("rule") == "stale:house" for e in evs), evs
    assert gw.status(TRUE0 + 400)["uptime_s"] == 400


def test_records_before_the_jump_convert_to_their_true_times():
    gw, log, early, late = _run()
    recs = list(log.read_from(1))
    jumps = [json.loads(p) for seq, ty, p in recs if ty == timefix.REC_CLOCK]
    assert jumps == [{"delta": DELTA, "from_seq": 1, "ts": TRUE0 + 130}]
    raw_t = [timefix.record_time(ty, p) for seq, ty, p in recs if ty == records.T_KEY]
    assert raw_t and min(raw_t) < timefix.CLOCK_VALID  # stamped on the unset clock in flash
    dec = records_dec.MinuteDecoder()
    ts = []
    for seq, ty, p in recs:
        p = timefix.fix_record(ty, p, DELTA)
        if ty in (records.T_KEY, records.T_DELTA):
            ts += [m["t"] for m in dec.decode(ty, p)]
    # windows end at 60, 120 s (unset clock, converted), 130 s (closed at
    # the jump), then on the true clock's own minutes
    assert ts[:3] == [TRUE0 + 60, TRUE0 + 120, TRUE0 + 130], ts
    assert all(timefix.valid(t) for t in ts) and ts == sorted(ts)
    assert ts[3] % 60 == 0 and ts[-1] == TRUE0 + 420
    evs = [json.loads(timefix.fix_record(ty, p, DELTA)) for seq, ty, p in recs if ty == gateway.REC_EVENT]
    assert evs and all(timefix.valid(e["ts"]) and timefix.valid(e["t"]) for e in evs)


def test_fix_record_leaves_valid_and_unreadable_records_alone():
    key_ok = b"\x00\x00\x00\x70" + b"\x00"  # t far after 2024
    assert timefix.fix_record(records.T_KEY, key_ok, DELTA) is key_ok
    for junk in (b"", b"\x01", b"{not json", b'{"ts": "x"}'):
        assert timefix.fix_record(gateway.REC_EVENT, junk, DELTA) is junk
        assert timefix.fix_record(records.T_KEY, junk, DELTA) in (junk,) or len(junk) >= 4
    assert timefix.fix_record(records.T_DELTA, b"\x01\x02", DELTA) == b"\x01\x02"
    assert timefix.shift(None, 5) is None and timefix.shift(TRUE0, 5) == TRUE0 and timefix.shift(7, 5) == 12
