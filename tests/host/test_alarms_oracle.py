"""The engine against an independent, second-by-second model of the issue-11
semantics (hypothesis drives block times, values and rule shapes), and the
parser against random text (never raises, columns inside the line)."""
import sys

from hypothesis import Phase, given, settings, strategies as st

from vegw import LIB  # noqa: F401  (firmware/lib on sys.path)

import alarm_engine
import alarm_rules

T = 90  # seconds simulated
TIMEOUT = 5  # stale timeout
HOUSE_V = (23.0, 23.9, 24.2, 24.4, 25.0)
SOLAR_V = (12.0, 14.0)


def oracle(cond_kind, D, hyst, A, blocks):
    """Events as (t, event) from a plain model: at each second s, first the
    'tick' (staleness before the blocks of s breaks every run; a `for`/`after`
    run that started D seconds ago and reaches s on fresh data fires), then
    each block of s followed by an evaluation on the new values (a second
    without blocks is evaluated once)."""
    last = {}
    vals = {}
    devs = ("house",) if cond_kind == "single" else ("house", "solar")

    def fresh(s):
        return all(d in last and s <= last[d] + TIMEOUT for d in devs)

    def cond():
        if cond_kind == "single":
            return vals["house"] < 24
        return vals["house"] < 24 and vals["solar"] > 13

    def clear_cond():
        if hyst:
            return vals["house"] >= 24.4
        return not cond()

    raised = False
    run = crun = None  # second at which the current known-true run started
    out = []
    for s in range(T):
        if not fresh(s):
            run = crun = None
        if not raised and D > 0 and run is not None and s - run >= D:
            raised = True
            crun = None
            out.append((s, "raised"))
        elif raised and A > 0 and crun is not None and s - crun >= A:
            raised = False
            run = None
            out.append((s, "cleared"))
        for dev, v in blocks.get(s, ()) or ((None, None),):
            if dev is not None:
                vals[dev] = v
                last[dev] = s
            known = fresh(s)
            c = known and cond()
            k = known and clear_cond()
            run = (s if run is None else run) if c else None
            crun = (s if crun is None else crun) if k else None
            if not raised and D == 0 and c:
                raised = True
                crun = None
                out.append((s, "raised"))
            elif raised and A == 0 and k:
                raised = False
                run = None
                out.append((s, "cleared"))
    return out


def engine_run(rule, blocks):
    rules, errors = alarm_rules.parse_rules([rule])
    assert errors == []
    evs = []
    eng = alarm_engine.Engine(rules, on_event=evs.append, stale_s=TIMEOUT, flap_max=0,
                              builtin={"stale": False, "error": False, "device_alarm": False})
    for s in range(T):
        eng.tick(s)
        for dev, v in blocks.get(s, ()):
            eng.update(dev, {"V": v}, s)
    return [(e["t"], e["event"]) for e in evs]


@st.composite
def scenario(draw):
    cond_kind = draw(st.sampled_from(("single", "compound")))
    D = draw(st.sampled_from((0, 1, 3, 6)))
    A = draw(st.sampled_from((0, 1, 4)))
    hyst = cond_kind == "single" and draw(st.booleans())
    blocks = {}
    for dev, choices, p in (("house", HOUSE_V, 0.6), ("solar", SOLAR_V, 0.4)):
        gap_bias = draw(st.integers(1, 8))
        s = 0
        while s < T:
            blocks.setdefault(s, []).append((dev, draw(st.sampled_from(choices))))
            s += draw(st.integers(1, gap_bias))
            if draw(st.integers(0, 9)) == 0:
                s += draw(st.integers(TIMEOUT, 3 * TIMEOUT))  # an outage
    text = "r: alarm: house.V < 24" + (" and solar.V > 13" if cond_kind == "compound" else "")
    if D:
        text += " for %ds" % D
    if hyst:
        text += " clear 24.4"
    if A:
        text += " after %ds" % A
    return text, cond_kind, D, hyst, A, blocks


# no shrink phase: shrinking these scenarios takes minutes on a shared machine,
# and the unshrunk example is printed anyway
@settings(max_examples=500, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(scenario())
def test_engine_matches_second_by_second_model(sc):
    text, cond_kind, D, hyst, A, blocks = sc
    assert engine_run(text, blocks) == oracle(cond_kind, D, hyst, A, blocks), text


def engine_replay_mode(rule, blocks):
    """As `vegw alarms replay` drives it: timers only at each line's time."""
    rules, errors = alarm_rules.parse_rules([rule])
    assert errors == []
    evs = []
    eng = alarm_engine.Engine(rules, on_event=evs.append, stale_s=TIMEOUT, flap_max=0,
                              builtin={"stale": False, "error": False, "device_alarm": False})
    for s in sorted(blocks):
        for dev, v in blocks[s]:
            eng.tick(s)
            eng.update(dev, {"V": v}, s)
    return [(e["t"], e["event"]) for e in evs]


@settings(max_examples=300, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(scenario())
def test_replay_mode_reports_each_event_at_the_first_line_at_or_after_it(sc):
    text, cond_kind, D, hyst, A, blocks = sc
    times = sorted(blocks)
    dense = engine_run(text, blocks)
    want = []
    for t, ev in dense:
        later = [x for x in times if x >= t]
        if later:
            want.append((later[0], ev))
    assert engine_replay_mode(text, blocks) == want, text


def test_model_and_engine_agree_on_a_hand_written_case():
    # fresh data 0..10 every 2 s below 24; stale after 15 (last block 10 + 5)
    blocks = {s: [("house", 23.0)] for s in range(0, 11, 2)}
    blocks[20] = [("house", 23.0)]
    want = [(6, "raised")]  # `for 6s`: 0..6 on fresh data
    assert oracle("single", 6, False, 0, blocks) == want
    assert engine_run("r: alarm: house.V < 24 for 6s", blocks) == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["house.V", "solar.PPV", "<", "<=", "==", "!=", ">", "and", "or", "not", "(", ")",
                                 "24", "-1.5", "0x1F", "for", "clear", "after", "latch", "5m", "30s", "x:", "alarm:",
                                 ":", "#", "=", "!", "house.volts", "1.2.3", "\t", "é", "SER#"]), max_size=14))
def test_parser_never_raises_and_points_inside_the_line(tokens):
    line = " ".join(tokens)
    for text in (line, "r: warning: " + line):
        rules, errors = alarm_rules.parse_rules([text])
        assert len(rules) + len(errors) <= 1
        for ln, col, msg in errors:
            assert ln == 1 and 1 <= col <= len(text) + 1 and msg and "\n" not in msg
            assert not msg.startswith("cannot parse rule"), msg  # no internal error path


if __name__ == "__main__":
    sys.exit("run with pytest")
