# Alarm engine with a fake clock: for/after/hysteresis/latch/stale/unknown,
# built-in rules, flapping limit, outbox, relay output.
import alarm_rules
import alarm_engine as A


def make(text, **kw):
    rules, errors = alarm_rules.parse_rules(text, alarm_rules.default_field_ok(None))
    assert errors == [], errors
    evs = []
    kw.setdefault("builtin", {"stale": False, "error": False, "device_alarm": False})
    eng = A.Engine(rules, on_event=evs.append, **kw)
    return eng, evs


def brief(evs, rule=None):
    return [(e["t"], e["rule"], e["event"]) for e in evs if rule is None or e["rule"] == rule]


def feed(eng, t, dev="house", **values):
    # what replay does: timers at the block's time first, then the block
    eng.tick(t)
    eng.update(dev, values, t)


def test_raise_and_clear_at_once_without_for():
    eng, evs = make("low: alarm: house.V < 24")
    feed(eng, 0, V=24.5)
    feed(eng, 10, V=23.9)
    feed(eng, 20, V=23.0)
    feed(eng, 30, V=24.0)
    assert brief(evs) == [(10, "low", "raised"), (30, "low", "cleared")]
    assert evs[0]["severity"] == "alarm"
    assert evs[0]["values"] == {"house.V": 23.9}
    assert evs[1]["values"] == {"house.V": 24.0}


def test_for_raises_at_first_tick_at_or_after_duration_and_resets_when_false():
    eng, evs = make("low: alarm: house.V < 24 and house.I < 10 for 5m")
    t = 0
    while t <= 200:
        feed(eng, t, V=23.5, I=2)  # true from 0
        t += 10
    feed(eng, 210, V=23.5, I=20)  # false: timer resets
    t = 220
    while t < 520:
        feed(eng, t, V=23.5, I=2)  # true again from 220: deadline 520
        t += 10
    assert brief(evs) == []
    feed(eng, 525, V=23.5, I=2)
    assert brief(evs) == [(525, "low", "raised")]


def test_for_fires_from_tick_alone_without_value_changes():
    eng, evs = make("p: warning: house.P > 1000 for 10m", stale_s=1000)
    eng.update("house", {"P": 1500}, 0)
    for t in (100, 300, 599):
        eng.tick(t)
    assert evs == []
    eng.tick(600)
    assert brief(evs) == [(600, "p", "raised")]


def test_update_without_tick_still_honours_deadline():
    eng, evs = make("p: warning: house.P > 1000 for 60s")
    eng.update("house", {"P": 1500}, 0)
    eng.update("house", {"P": 1600}, 30)
    eng.update("house", {"P": 1700}, 60)
    assert brief(evs) == [(60, "p", "raised")]


def test_hysteresis_clear_number():
    eng, evs = make("low: alarm: house.V < 24.0 clear 24.4")
    for t, v in ((0, 23.9), (10, 24.1), (20, 24.39), (30, 23.5), (40, 24.4), (50, 24.3), (60, 23.99)):
        feed(eng, t, V=v)
    assert brief(evs) == [(0, "low", "raised"), (40, "low", "cleared"), (60, "low", "raised")]


def test_hysteresis_for_greater_than():
    eng, evs = make("hot: warning: house.T > 45 clear 40")
    for t, v in ((0, 46), (10, 41), (20, 40.5), (30, 40)):
        feed(eng, t, T=v)
    assert brief(evs) == [(0, "hot", "raised"), (30, "hot", "cleared")]


def test_clear_condition_with_after():
    eng, evs = make("low: alarm: house.V < 24 clear house.V > 24.4 after 1m")
    feed(eng, 0, V=23)
    feed(eng, 10, V=24.5)  # clear condition true from 10
    feed(eng, 40, V=24.3)  # false again: after-timer restarts
    feed(eng, 50, V=24.6)  # true from 50: clears at 110
    feed(eng, 100, V=24.7)
    assert brief(evs) == [(0, "low", "raised")]
    feed(eng, 110, V=24.7)
    assert brief(evs) == [(0, "low", "raised"), (110, "low", "cleared")]


def test_after_without_clear_uses_not_condition():
    eng, evs = make("low: alarm: house.V < 24 after 30s")
    feed(eng, 0, V=23)
    feed(eng, 10, V=25)
    feed(eng, 35, V=25)
    feed(eng, 40, V=25)
    assert brief(evs) == [(0, "low", "raised"), (40, "low", "cleared")]


def test_latch_clears_only_on_acknowledge():
    eng, evs = make("soc: alarm: house.SOC < 30 latch")
    feed(eng, 0, SOC=25)
    feed(eng, 10, SOC=80)
    feed(eng, 20, SOC=90)
    assert brief(evs) == [(0, "soc", "raised")]
    assert eng.acknowledge("nope", 25) is False
    assert eng.acknowledge("soc", 30) is True
    assert brief(evs) == [(0, "soc", "raised"), (30, "soc", "acknowledged"), (30, "soc", "cleared")]
    assert eng.acknowledge("soc", 31) is False  # no longer raised
    feed(eng, 40, SOC=20)
    assert brief(evs)[-1] == (40, "soc", "raised")


def test_latch_acknowledged_while_condition_holds_raises_again_at_next_tick():
    eng, evs = make("soc: alarm: house.SOC < 30 latch")
    feed(eng, 0, SOC=25)
    eng.acknowledge("soc", 5)
    feed(eng, 10, SOC=25)
    assert brief(evs) == [(0, "soc", "raised"), (5, "soc", "acknowledged"), (5, "soc", "cleared"),
                          (10, "soc", "raised")]


def test_acknowledge_non_latched_keeps_it_raised():
    eng, evs = make("low: warning: house.V < 24")
    feed(eng, 0, V=23)
    assert eng.acknowledge("low", 5) is True
    feed(eng, 10, V=25)
    assert brief(evs) == [(0, "low", "raised"), (5, "low", "acknowledged"), (10, "low", "cleared")]


def test_stale_restarts_for_timer_and_counts_only_fresh_time():
    # stale timeout 60 s. Data to 200, then a gap to 400 (stale from 260):
    # the 5 m started at 0 never completed on fresh data, so the timer restarts
    # at 400 and the rule raises at 700.
    eng, evs = make("low: alarm: house.V < 24 for 5m")
    t = 0
    while t <= 200:
        feed(eng, t, V=23)
        t += 20
    t = 400
    while t < 700:
        feed(eng, t, V=23)
        t += 20
    assert brief(evs) == []
    feed(eng, 700, V=23)
    assert brief(evs) == [(700, "low", "raised")]


def test_deadline_before_data_went_stale_fires_at_next_tick():
    # fresh 0..310 (last block 250): the 300 s held on fresh data; the replay
    # sees it at the next line (320), which is the time the event carries.
    eng, evs = make("low: alarm: house.V < 24 for 5m")
    t = 0
    while t <= 250:
        feed(eng, t, V=23)
        t += 10
    feed(eng, 320, V=23)
    assert brief(evs) == [(320, "low", "raised")]


def test_stale_exactly_at_timeout_and_unknown_neither_raises_nor_clears():
    eng, evs = make("low: alarm: house.V < 24 clear 24.4", stale_s=60, builtin={"stale": True})
    feed(eng, 0, V=23)
    eng.tick(60)  # a block every 60 s is still fresh
    assert brief(evs) == [(0, "low", "raised")]
    eng.tick(60.5)  # more than 60 s without a block: stale; the raised rule stays raised
    assert brief(evs) == [(0, "low", "raised"), (60.5, "stale:house", "raised")]
    eng.update("solar", {"V": 25.0}, 70)
    assert "low" in eng.active()
    feed(eng, 80, V=25)  # fresh again and clear level reached
    assert brief(evs)[2:] == [(80, "stale:house", "cleared"), (80, "low", "cleared")]


def test_stale_second_device_makes_condition_unknown():
    eng, evs = make("diff: warning: house.V > solar.V for 2m", stale_s=60)
    feed(eng, 0, "solar", V=12.0)
    t = 0
    while t <= 200:
        feed(eng, t, V=13.0 + t / 1000)  # house keeps changing; solar silent since 0
        t += 10
    assert brief(evs) == []  # deadline 120 lies after solar went stale at 60
    feed(eng, 210, "solar", V=12.0)  # timer starts at 210
    t = 220
    while t < 330:
        feed(eng, t, V=13.0)
        feed(eng, t, "solar", V=12.0)
        t += 10
    assert brief(evs) == []
    feed(eng, 330, V=13.0)
    assert brief(evs) == [(330, "diff", "raised")]


def test_missing_null_and_text_values_are_unknown():
    eng, evs = make("c: alarm: house.I < 0 for 20s")
    feed(eng, 0, V=12.0)  # I never sent
    feed(eng, 10, I=-1.0)
    feed(eng, 20, I=None)  # null: not available, timer restarts
    feed(eng, 30, I=-1.0)
    feed(eng, 40, I="x")
    feed(eng, 45, I=-2.0)
    feed(eng, 60, I=-2.0)
    assert brief(evs) == []
    feed(eng, 65, I=-2.0)
    assert brief(evs) == [(65, "c", "raised")]


def test_value_missing_from_a_block_keeps_last_value():
    eng, evs = make("c: alarm: house.V < 24 and house.H9 > 100")
    feed(eng, 0, V=23.0)
    feed(eng, 1, H9=200)  # history block: V still 23.0
    assert brief(evs) == [(1, "c", "raised")]


def test_aliases_in_rules_read_canonical_labels():
    eng, evs = make("a: info: house.voltage < 12 and house.state_of_charge < 50")
    feed(eng, 0, V=11.9, SOC=40.0)
    assert brief(evs) == [(0, "a", "raised")]


def test_reevaluates_only_when_a_read_value_changes():
    eng, evs = make("a: info: house.V < 12\nb: info: house.I > 5")
    calls = []
    real = eng._eval

    def counting(r, now):
        calls.append(r)
        real(r, now)

    eng._eval = counting
    eng.update("house", {"V": 13.0, "I": 1.0, "P": 13}, 0)
    assert sorted(calls) == [0, 1]
    del calls[:]
    eng.update("house", {"V": 13.0, "I": 1.0, "P": 14}, 1)
    assert calls == []
    eng.update("house", {"V": 13.0, "I": 2.0}, 2)
    assert calls == [1]


def test_re_raise_after_clear_condition_when_condition_still_holds():
    eng, evs = make("x: warning: house.V < 24 clear house.I > 50")
    feed(eng, 0, V=23, I=0)
    feed(eng, 10, V=23, I=60)
    feed(eng, 20, V=23, I=60)
    assert brief(evs) == [(0, "x", "raised"), (10, "x", "cleared"), (20, "x", "raised")]


def test_builtin_stale_error_and_device_alarms():
    rules, _ = alarm_rules.parse_rules("", None)
    evs = []
    eng = A.Engine(rules, on_event=evs.append, stale_s=60, devices=["house", "solar", "shunt"])
    feed(eng, 0, "solar", ERR=0, V=13.0)
    feed(eng, 10, "solar", ERR=17)
    feed(eng, 20, "house", AR=4, Alarm=True)
    feed(eng, 30, "house", AR=0, Alarm=False)
    feed(eng, 40, "inverter", WARN=1 | 64)
    feed(eng, 50, "solar", ERR=0)
    eng.tick(61)  # shunt never reported for more than 60 s since the first tick
    feed(eng, 95, "house", V=12.0)  # house stale after 90; solar (last 50) after 110
    feed(eng, 111, "house", V=12.0)
    feed(eng, 120, "solar", V=13.1)
    assert brief(evs) == [
        (10, "error:solar", "raised"), (20, "device_alarm:house", "raised"),
        (30, "device_alarm:house", "cleared"), (40, "device_warning:inverter", "raised"),
        (50, "error:solar", "cleared"), (61, "stale:shunt", "raised"),
        (95, "stale:house", "raised"), (95, "stale:house", "cleared"),
        (111, "stale:solar", "raised"), (111, "stale:inverter", "raised"), (120, "stale:solar", "cleared")]
    assert evs[0]["values"] == {"ERR": 17, "name": "charger_temperature_high"}
    assert evs[0]["severity"] == "alarm"
    assert evs[1]["values"]["reasons"] == ["low_soc"]
    assert evs[3]["values"]["reasons"] == ["low_voltage", "high_temperature"]
    assert evs[3]["severity"] == "warning"
    assert sorted(eng.active()) == ["device_warning:inverter", "stale:inverter", "stale:shunt"]


def test_builtins_can_be_switched_off_and_ble_alarm_state_maps():
    rules, _ = alarm_rules.parse_rules("", None)
    evs = []
    eng = A.Engine(rules, on_event=evs.append, builtin={"stale": False, "error": False})
    feed(eng, 0, "bms", alarm_state=1, ERR=5)
    feed(eng, 10, "bms", alarm_state=2)
    feed(eng, 20, "bms", alarm_state=0)
    eng.tick(500)
    assert brief(evs) == [(0, "device_warning:bms", "raised"), (10, "device_alarm:bms", "raised"),
                          (10, "device_warning:bms", "cleared"), (20, "device_alarm:bms", "cleared")]
    evs2 = []
    eng2 = A.Engine(rules, on_event=evs2.append, builtin={"stale": False, "error": False, "device_alarm": False})
    feed(eng2, 0, "solar", ERR=17, AR=1)
    assert evs2 == []


def test_flapping_is_rate_limited_visibly():
    eng, evs = make("f: warning: house.V < 24", flap_max=3, flap_window=100)
    t = 0
    for k in range(6):
        feed(eng, t, V=23)
        feed(eng, t + 1, V=25)
        t += 10
    got = brief(evs)
    assert got[:6] == [(0, "f", "raised"), (1, "f", "cleared"), (10, "f", "raised"), (11, "f", "cleared"),
                       (20, "f", "raised"), (21, "f", "cleared")]
    assert got[6] == (30, "f", "suppressed")
    assert len(got) == 7
    assert evs[6]["values"] == {"raises": 3, "window": 100}
    assert eng.stats()["suppressed"] == 6  # raise 30, clear 31, ... clear 51
    feed(eng, 60, V=23)  # raised while suppressed
    eng.tick(129)
    assert len(brief(evs)) == 7
    eng.tick(130)  # a window after the suppression started at 30: current state published
    assert brief(evs)[7:] == [(130, "f", "raised")]
    feed(eng, 140, V=25)
    assert brief(evs)[8:] == [(140, "f", "cleared")]


def test_outbox_is_bounded_and_counts_drops():
    rules, _ = alarm_rules.parse_rules("a: info: house.V < 12", None)
    eng = A.Engine(rules, builtin={"stale": False}, flap_max=0)
    for k in range(40):
        eng.update("house", {"V": 11.0 if k % 2 == 0 else 13.0}, k)
    assert eng.stats()["dropped_events"] == 8
    got = eng.events()
    assert len(got) == 32
    assert got[0]["t"] == 8 and got[-1]["t"] == 39
    assert eng.events() == []


def test_relay_output_follows_alarm_severity_and_acknowledge():
    rules, _ = alarm_rules.parse_rules("a: alarm: house.V < 12\nw: warning: house.V < 12.5\nb: alarm: house.I > 100",
                                       None)
    out = []
    calls = []

    def relay(name, sev, on):
        calls.append((name, sev, on))
        out.append(on)

    eng = A.Engine(rules, on_event=lambda e: None, on_output=relay, builtin={"stale": False})
    eng.update("house", {"V": 12.2, "I": 0}, 0)  # warning only: relay stays off
    assert out == []
    eng.update("house", {"V": 11.8}, 1)
    eng.update("house", {"I": 150}, 2)
    assert out == [True]
    eng.update("house", {"V": 13.0}, 3)
    assert out == [True]  # b still raised
    eng.acknowledge("b", 4)  # acknowledged: silenced
    assert out == [True, False]
    assert calls == [("a", "alarm", True), ("b", "alarm", False)]


def test_bad_outside_input_never_raises():
    eng, evs = make("a: info: house.V < 12 and house.I > solar.I")
    for v in (None, "12", [1], {"a": 1}, float("nan"), True, -1e300):
        eng.update("house", {"V": v, "I": v}, 1)
        eng.update("solar", {"I": v}, 1)
        eng.tick(2)
    eng.update("house", {}, 3)
    eng.update(None, {"V": 1}, 3)
    assert eng.acknowledge(None, 3) is False


def test_acknowledge_builtin_silences_output_until_it_clears():
    rules, _ = alarm_rules.parse_rules("", None)
    evs = []
    out = []
    eng = A.Engine(rules, on_event=evs.append, on_output=lambda n, s, on: out.append((n, on)))
    feed(eng, 0, "solar", ERR=2)
    assert out == [("error:solar", True)]
    assert eng.acknowledge("error:solar", 5) is True
    assert out == [("error:solar", True), ("error:solar", False)]
    assert eng.acknowledge("error:house", 5) is False
    feed(eng, 10, "solar", ERR=0)
    assert brief(evs) == [(0, "error:solar", "raised"), (5, "error:solar", "acknowledged"),
                          (10, "error:solar", "cleared")]
    assert out[-1] == ("error:solar", False)


def test_ble_rules_do_not_drive_the_relay_without_allow_ble():
    # Instant Readout has no MAC: a forged advert must not switch the relay
    # (issue 23.9). The event still goes out; allow_ble opts a rule in.
    out = []
    eng, evs = make("forged: alarm: shunt.V < 11\n"
                    "mixed: alarm: house.V < 11 and shunt.V < 11\n"
                    "opted: alarm: shunt.SOC < 5 allow_ble",
                    on_output=lambda n, s, on: out.append((n, on)), ble_devices=["shunt"],
                    builtin={"stale": False, "error": True, "device_alarm": False})
    feed(eng, 0, "shunt", V=10.0, SOC=50)
    feed(eng, 1, "house", V=10.5)
    assert brief(evs) == [(0, "forged", "raised"), (1, "mixed", "raised")]
    assert out == [] and eng.stats()["output_refused"] == 2
    feed(eng, 2, "shunt", ERR=2)  # a BLE device's built-in error alarm: no relay either
    assert out == []
    feed(eng, 3, "shunt", SOC=4)
    assert out == [("opted", True)]
    feed(eng, 4, "house", ERR=2)  # VE.Direct built-in: drives it as before
    assert eng.active()[-1] == "error:house"


def test_allow_ble_parses_once():
    rules, errors = alarm_rules.parse_rules("a: alarm: x.V < 1 allow_ble latch\nb: alarm: x.V < 1 allow_ble allow_ble",
                                            alarm_rules.default_field_ok(None))
    assert len(rules) == 1 and rules[0][7] is True and rules[0][6] is True
    assert len(errors) == 1 and "given twice" in errors[0][2]


def test_snapshot_and_restore_keep_raised_alarms_without_new_events():
    out = []
    text = "low: alarm: house.V < 24\nhi: warning: house.V > 30"
    eng, evs = make(text, on_output=lambda n, s, on: out.append(on),
                    builtin={"stale": False, "error": True, "device_alarm": False})
    feed(eng, 0, V=23.0, ERR=2)
    assert sorted(eng.active()) == ["error:house", "low"] and out == [True]
    eng.acknowledge("low", 1)
    snap = eng.snapshot()
    assert snap["acked"] == ["low"]
    # a new engine after the restart
    out2 = []
    eng2, evs2 = make(text, on_output=lambda n, s, on: out2.append(on),
                      builtin={"stale": False, "error": True, "device_alarm": False}, devices=["house"])
    assert eng2.restore(snap, 100) == 2
    assert sorted(eng2.active()) == ["error:house", "low"]
    assert out2 == [True]  # error:house is not acknowledged: the output is back on
    feed(eng2, 101, V=23.0, ERR=2)
    assert evs2 == []  # nothing raised a second time
    feed(eng2, 102, V=25.0, ERR=0)
    assert sorted(brief(evs2)) == [(102, "error:house", "cleared"), (102, "low", "cleared")]
    assert eng2.restore({"raised": [None, "nope", "x:y"]}, 103) == 0
    assert eng2.restore("garbage", 103) == 0


def test_reads_tells_which_fields_a_rule_watches():
    # the thin uplink sends a state message for a field an alarm reads
    eng, _ = make(["low: alarm: house.V < 24", "hot: warning: solar.T > 60 for 1m"])
    assert eng.reads("house", "V") and eng.reads("solar", "T")
    assert not eng.reads("house", "T") and not eng.reads("solar", "V") and not eng.reads("shed", "V")
