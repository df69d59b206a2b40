# Derived metrics against hand-computed values, persistence round trip.
import field_aliases
import field_names
import metrics as M

D = 86400
T0 = 1000 * D  # midnight starting day 1000


def near(a, b, eps=1e-9):
    return a is not None and abs(a - b) <= eps


def test_every_metric_is_a_registered_field():
    for f in M.battery_fields() + M.solar_fields():
        assert field_aliases.resolve(f[0]) == f[0]
        assert field_names.info(f[0]) == f
    b = M.BatteryMetrics().values(T0)
    s = M.SolarMetrics().values(T0)
    assert sorted(b) == sorted(f[0] for f in M.battery_fields())
    assert sorted(s) == sorted(f[0] for f in M.solar_fields())


def test_ah_and_kwh_in_out_today():
    m = M.BatteryMetrics()
    m.update({"V": 12.0, "I": 10.0, "P": 120, "SOC": 90.0}, T0)
    m.update({"V": 12.0, "I": -5.0, "P": -60, "SOC": 90.0}, T0 + 60)  # [0,60]: 10 A, 120 W
    m.update({"H6": -1.0, "H9": 10}, T0 + 90)  # history block: no integration
    m.update({"V": 12.0, "I": -5.0, "P": -60}, T0 + 120)  # [60,120]: -5 A, -60 W
    m.update({"V": 12.0, "I": 0.0, "P": 0}, T0 + 180)  # [120,180]: -5 A, -60 W
    v = m.values(T0 + 200)
    assert near(v["ah_in_today"], 600 / 3600)  # 10 A * 60 s
    assert near(v["ah_out_today"], 600 / 3600)  # 5 A * 120 s
    assert near(v["kwh_in_today"], 7200 / 3.6e6)  # 120 W * 60 s
    assert near(v["kwh_out_today"], 7200 / 3.6e6)  # 60 W * 120 s
    assert v["ah_in_yesterday"] == 0 and v["kwh_out_yesterday"] == 0


def test_power_from_v_times_i_when_p_missing():
    m = M.BatteryMetrics()
    m.update({"V": 25.0, "I": -4.0}, T0)
    m.update({"V": 25.0, "I": -4.0}, T0 + 36)
    assert near(m.values(T0 + 36)["kwh_out_today"], 100 * 36 / 3.6e6)


def test_gap_longer_than_max_gap_is_not_integrated():
    m = M.BatteryMetrics(max_gap_s=60)
    m.update({"I": 10.0}, T0)
    m.update({"I": 10.0}, T0 + 61)  # gap: nothing
    m.update({"I": 10.0}, T0 + 121)  # 60 s: counted
    assert near(m.values(T0 + 121)["ah_in_today"], 600 / 3600)


def test_interval_over_midnight_is_split():
    m = M.BatteryMetrics()
    m.update({"I": 2.0}, T0 + D - 30)
    m.update({"I": 2.0}, T0 + D + 30)
    v = m.values(T0 + D + 30)
    assert near(v["ah_in_today"], 60 / 3600)
    assert near(v["ah_in_yesterday"], 60 / 3600)


def test_day_offset_moves_midnight():
    m = M.BatteryMetrics(day_offset_s=3600)  # UTC+1: local midnight at 23:00 UTC
    m.update({"I": 2.0}, T0 + D - 3600 - 30)
    m.update({"I": 2.0}, T0 + D - 3600 + 30)
    v = m.values(T0 + D - 3600 + 30)
    assert near(v["ah_in_today"], 60 / 3600)
    assert near(v["ah_in_yesterday"], 60 / 3600)


def _soc_days(m):
    t = T0
    while t < T0 + 3600:  # day 1000: 60 intervals of 60 s at 50 %
        m.update({"I": -1.0, "SOC": 50.0}, t)
        t += 60
    m.update({"I": -1.0, "SOC": None}, t)  # BMV not synchronised: SoC unknown
    t = T0 + D
    while t <= T0 + D + 1800:  # day 1001: 30 intervals at 80 %
        m.update({"I": -1.0, "SOC": 80.0}, t)
        t += 60
    return T0 + D + 1800


def test_soc_averages_over_days_weighted_by_covered_time():
    m = M.BatteryMetrics()
    now = _soc_days(m)
    v = m.values(now)
    assert near(v["soc_avg_1d"], 80.0)
    assert near(v["soc_avg_7d"], (50 * 3600 + 80 * 1800) / 5400)  # 60 %
    assert near(v["soc_avg_30d"], 60.0) and near(v["soc_avg_90d"], 60.0)
    # 8 days later the first day is out of the 7-day window, still in 30 days
    v = m.values(now + 7 * D)
    assert v["soc_avg_1d"] is None and v["soc_avg_7d"] is None
    assert near(v["soc_avg_30d"], 60.0)
    assert m.values(now + 100 * D)["soc_avg_90d"] is None


def test_since_full_from_soc_and_from_h9():
    m = M.BatteryMetrics()
    assert m.values(T0)["since_full"] is None
    m.update({"I": 1.0, "SOC": 100.0}, T0 + 1000)
    m.update({"I": -1.0, "SOC": 99.0}, T0 + 1010)
    assert m.values(T0 + 1500)["since_full"] == 500
    m.update({"H9": 3600}, T0 + 5000)
    assert m.values(T0 + 5000)["since_full"] == 3600


def test_midpoint_deviation():
    m = M.BatteryMetrics()
    m.update({"V": 24.0, "VM": 11.76, "I": 0.0}, T0)
    v = m.values(T0)
    assert near(v["mid_dev"], 2.0)  # 100 * (24 - 2 * 11.76) / 24
    assert near(v["mid_dev_abs"], 2.0)
    m.update({"V": 24.0, "VM": 12.24, "I": 0.0}, T0 + 1)
    assert near(m.values(T0 + 1)["mid_dev"], -2.0) and near(m.values(T0 + 1)["mid_dev_abs"], 2.0)
    m.update({"V": 24.0, "DM": -1.5, "I": 0.0}, T0 + 2)  # the monitor's own figure wins
    assert m.values(T0 + 2)["mid_dev"] == -1.5


def test_full_cycles_from_h6_or_own_count():
    m = M.BatteryMetrics(capacity_ah=100)
    m.update({"I": -5.0}, T0)
    m.update({"I": -5.0}, T0 + 60)
    assert near(m.values(T0 + 60)["full_cycles"], (5 * 60 / 3600) / 100)
    m.update({"H6": -250.0}, T0 + 61)
    assert near(m.values(T0 + 61)["full_cycles"], 2.5)
    assert M.BatteryMetrics().values(T0)["full_cycles"] is None  # no capacity known


def _discharge(m, t, amps, minutes, v_start=12.8, v_end=11.4, gap_at=None):
    m.update({"V": v_start + 0.4, "I": amps, "SOC": 100.0}, t)  # full charge
    for k in range(1, minutes + 1):
        t += 60
        if gap_at is not None and k == gap_at:
            t += 7200  # two hours without data
        v = v_end if k == minutes else v_start - (v_start - v_end - 0.2) * k / minutes
        m.update({"V": v, "I": amps, "SOC": 99.0}, t)
    return t


def test_capacity_estimate_from_full_to_empty_voltage():
    m = M.BatteryMetrics(capacity_ah=100)
    t = _discharge(m, T0, -5.0, 600)  # 5 A for 10 h, then 11.4 V <= 11.5 V
    v = m.values(t)
    assert near(v["capacity_est"], 50.0, 1e-6)
    assert near(v["capacity_conf"], 100.0 / 3, 1e-6)  # one estimate, full coverage
    assert near(v["soh"], 50.0, 1e-6)
    t = _discharge(m, t + 60, -4.0, 600)  # 40 Ah
    t = _discharge(m, t + 60, -6.0, 600)  # 60 Ah
    v = m.values(t)
    assert near(v["capacity_est"], 50.0, 1e-6)
    assert near(v["capacity_conf"], 100.0, 1e-6)


def test_capacity_estimate_refused_with_gaps_or_heavy_load():
    m = M.BatteryMetrics(capacity_ah=100)
    t = _discharge(m, T0, -5.0, 600, gap_at=300)  # 2 h of 12 h missing: coverage 0.83 < 0.9
    assert m.values(t)["capacity_est"] is None
    t = _discharge(m, t + 60, -20.0, 120)  # 20 A > C/10: the sag is not "empty"
    assert m.values(t)["capacity_est"] is None
    m2 = M.BatteryMetrics(capacity_ah=100, nominal_v=24)  # 24 V bank: empty at 23 V
    t = _discharge(m2, T0, -5.0, 60, v_start=25.6, v_end=23.0)
    assert near(m2.values(t)["capacity_est"], 5.0, 1e-6)


def test_persistence_round_trip_survives_reboot():
    m = M.BatteryMetrics(capacity_ah=100)
    now = _soc_days(m)
    m.update({"I": -5.0, "SOC": 100.0}, now + 60)
    m.update({"I": -5.0, "SOC": 99.0, "V": 12.0}, now + 120)
    blob = m.to_bytes()
    assert len(blob) < 8000
    before = m.values(now + 120)
    m2 = M.BatteryMetrics(capacity_ah=100)
    assert m2.from_bytes(blob) is True
    after = m2.values(now + 120)
    for k in ("soc_avg_1d", "soc_avg_7d", "soc_avg_30d", "soc_avg_90d", "ah_in_today", "ah_out_today",
              "kwh_out_today", "since_full", "full_cycles", "capacity_est", "capacity_conf"):
        assert after[k] == before[k], k
    assert m2.to_bytes() == blob
    # the reboot is a gap: the first block after it integrates nothing
    m2.update({"I": -5.0}, now + 150)
    assert m2.values(now + 150)["ah_out_today"] == after["ah_out_today"]


def test_from_bytes_refuses_foreign_or_corrupt_data():
    m = M.BatteryMetrics()
    m.update({"I": 1.0, "SOC": 100.0}, T0)
    blob = m.to_bytes()
    fresh = M.BatteryMetrics()
    for bad in (b"", b"VGMB", blob[:-1], blob + b"x", b"XXXX" + blob[4:], blob[:4] + b"\x09" + blob[5:]):
        assert fresh.from_bytes(bad) is False
    assert fresh.values(T0)["since_full"] is None  # untouched
    s = M.SolarMetrics()
    assert s.from_bytes(blob) is False


def test_solar_pv_yield_separate_from_load_and_persisted():
    s = M.SolarMetrics()
    t = T0
    for k in range(61):  # 60 intervals of 60 s
        s.update({"V": 12.5, "I": 6.0, "VPV": 40.0, "PPV": 100}, t)
        s.update({"IL": 2.0, "H20": 0.09, "LOAD": True}, t + 1)  # second block of the second
        t += 60
    v = s.values(t - 60)
    assert near(v["pv_kwh_today"], 0.1)  # 100 W * 1 h
    assert near(v["load_power"], 25.0)  # 12.5 V * 2 A
    assert near(v["charge_power"], 75.0)
    # values hold until the next block: IL (a second after PPV) covers every interval
    assert near(v["load_kwh_today"], 25 * 3600 / 3.6e6)
    assert near(v["charge_kwh_today"], 75 * 3600 / 3.6e6)
    s2 = M.SolarMetrics()
    assert s2.from_bytes(s.to_bytes()) is True
    assert s2.values(t - 60)["pv_kwh_today"] == v["pv_kwh_today"]
    assert s2.values(t - 60 + D)["pv_kwh_yesterday"] == v["pv_kwh_today"]


def test_for_block_picks_the_kind_and_bad_values_never_raise():
    assert isinstance(M.for_block({"PPV": 1}), M.SolarMetrics)
    assert isinstance(M.for_block({"SOC": 1.0}, capacity_ah=5), M.BatteryMetrics)
    assert M.for_block({"AC_OUT_V": 230}) is None
    m = M.BatteryMetrics()
    for v in (None, "x", [1], True):
        m.update({"V": v, "I": v, "P": v, "SOC": v, "VM": v, "DM": v, "H6": v, "H9": v}, T0)
        m.update({"V": v, "I": v, "P": v, "SOC": v}, T0 + 1)
        m.values(T0 + 1)


def test_values_see_a_span_written_into_yesterday_after_a_call():
    m = M.BatteryMetrics()
    m.update({"I": 1.0, "SOC": 40.0}, T0 + D - 30)
    m.values(T0 + D + 10)  # day rolled over: past-day sums are cached
    m.update({"I": 1.0, "SOC": 40.0}, T0 + D + 30)  # 30 s of this go to yesterday
    v = m.values(T0 + D + 30)
    assert near(v["soc_avg_7d"], 40.0) and near(v["soc_avg_1d"], 40.0)
    assert near(v["ah_in_yesterday"], 30 / 3600)


def test_metric_set_picks_kinds_and_survives_reboot():
    ms = M.MetricSet(capacity={"house": 200})
    ms.update("inverter", {"AC_OUT_V": 230.0}, T0)  # no metrics for an inverter
    ms.update("solar", {"ERR": 0, "LOAD": True}, T0)  # MPPT block B: kind not known yet
    for k in range(4):
        ms.update("house", {"V": 12.5, "I": -20.0, "SOC": 90.0}, T0 + 60 * k)
        ms.update("solar", {"V": 12.5, "I": 4.0, "PPV": 60}, T0 + 60 * k)
    assert ms.values("inverter", T0) is None
    h = ms.values("house", T0 + 180)
    assert near(h["ah_out_today"], 1.0)  # 20 A for 180 s
    assert near(h["full_cycles"], 1.0 / 200)
    assert near(ms.values("solar", T0 + 180)["pv_kwh_today"], 60 * 180 / 3.6e6)
    blob = ms.to_bytes()
    ms2 = M.MetricSet(capacity={"house": 200})
    assert ms2.from_bytes(blob) is True
    assert ms2.values("house", T0 + 180) == h
    s1, s2 = ms.values("solar", T0 + 180), ms2.values("solar", T0 + 180)
    for k in ("pv_kwh_today", "charge_kwh_today", "load_kwh_today"):
        assert s2[k] == s1[k], k
    assert s1["charge_power"] == 50.0 and s2["charge_power"] is None  # live values wait for a block
    assert ms2.from_bytes(blob[:-3]) is False and ms2.from_bytes(b"nope") is False
    assert ms2.values("house", T0 + 180) == h  # a refused blob changes nothing


def test_small_steady_flow_is_not_rounded_away_and_sums_saturate():
    m = M.BatteryMetrics()
    for k in range(3601):  # 4 mA idle draw, one block a second for an hour
        m.update({"I": -0.004, "P": -0.05, "SOC": 50.0}, T0 + k)
    v = m.values(T0 + 3600)
    assert near(v["ah_out_today"], 0.004, 1e-6)
    assert near(v["kwh_out_today"], 0.05 / 1000, 1e-8)  # 0.05 W for 1 h = 0.05 Wh
    assert near(v["soc_avg_1d"], 50.0, 1e-6)
    r = M.DayRing((1,), 2)
    r.add(5, 0, 0xFFFFFFF0)
    r.add(5, 0, 0x100)
    assert r.get(5, 0) == 0xFFFFFFFF and r.saturated == 1
    assert r.get(6, 0) == 0 and r.get(4, 0) == 0
    r.add(7, 0, 3)  # slot of day 5 reused for day 7
    assert r.get(5, 0) == 0 and r.get(7, 0) == 3
    r2 = M.DayRing((1,), 2)
    r2.load(r.to_bytes())
    assert r2.get(7, 0) == 3 and r2.days[0] is None
