"""Model-based property test of lib/flashlog.py (CPython, hypothesis): any
sequence of appends, flushes, acks, reads from any seq and clean reboots
agrees with a plain list of what was appended, minus what the ring dropped."""
from hypothesis import given, settings, strategies as st

import flashlog
from drivers.nor_sim import NorSim

op = st.one_of(
    st.tuples(st.just("append"), st.integers(1, 255), st.integers(0, 60)),
    st.tuples(st.just("flush")),
    st.tuples(st.just("ack"), st.integers(0, 100)),
    st.tuples(st.just("read"), st.integers(0, 100)),
    st.tuples(st.just("reboot"), st.booleans()),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=120), st.sampled_from([(6, 256, 64), (8, 256, 200), (5, 512, 120)]))
def test_log_matches_a_list_model(ops, geom):
    blocks, bs, batch = geom
    bd = NorSim(blocks, bs)
    log = flashlog.FlashLog(bd, batch_size=batch)
    model = []  # (seq, type, payload) appended and not lost
    flushed = 0  # model[:flushed] is on flash
    acked = 0
    sd = flashlog.seq_diff
    for o in ops:
        if o[0] == "append":
            payload = bytes((o[2] + i) & 0xFF for i in range(o[2]))
            before = log.flushes
            s = log.append(o[1], payload)
            if log.flushes != before:  # the batch was full: flushed first
                flushed = len(model)
            if o[2] > log.max_payload:
                assert s == 0
                continue
            assert s and (not model or sd(s, model[-1][0]) > 0)
            model.append((s, o[1], payload))
        elif o[0] == "flush":
            assert log.flush()
            flushed = len(model)
        elif o[0] == "ack" and model:
            s = model[o[1] % len(model)][0]
            assert log.mark_uploaded(s)
            if sd(s, acked) > 0:
                acked = s
        elif o[0] == "read" and model:
            start = model[o[1] % len(model)][0]
            got = list(log.read_from(start))
            oldest = log.oldest_seq()
            want = [r for r in model if sd(r[0], start) >= 0 and sd(r[0], oldest) >= 0]
            assert got == want
        elif o[0] == "reboot":
            if o[1]:
                assert log.flush()
                flushed = len(model)
            del model[flushed:]  # RAM batch lost
            log = flashlog.FlashLog(bd, batch_size=batch)
            assert log.cursor == acked
        # the ring drops whole sectors of the oldest records
        oldest = log.oldest_seq()
        if oldest:
            k = 0
            while k < len(model) and sd(model[k][0], oldest) < 0:
                k += 1
            del model[:k]
            flushed = max(0, flushed - k)
    assert bd.violations == 0
    got = list(log.unsent())
    assert got == [r for r in model if sd(r[0], log.cursor) > 0]
