# Report by exception (firmware/lib/reporter.py), both runtimes.
import reporter as R
from _util import Rng


def test_first_then_quiet_then_heartbeat():
    r = R.Reporter(heartbeat_s=60)
    v = {"V": 12.80, "I": -3.1, "CS": 3}
    assert r.check("house", v, 0) == "first"
    for t in range(1000, 60000, 1000):
        assert r.check("house", v, t) is None, t
    assert r.check("house", v, 60000) == "heartbeat"
    assert r.check("house", v, 61000) is None
    c = r.counters()
    assert (c["first"], c["by_heartbeat"], c["by_change"], c["suppressed"]) == (1, 1, 0, 60)


def test_voltage_deadband_and_drift_accumulates():
    r = R.Reporter(heartbeat_s=3600)
    r.check("b", {"V": 12.80}, 0)
    assert r.check("b", {"V": 12.84}, 1000) is None  # 0.04 < 0.05
    assert r.check("b", {"V": 12.76}, 2000) is None
    # compared with the last *published* 12.80, not the last sample: a slow
    # drift of 0.01 V per block is reported once it reaches 0.05 V
    vals = (12.81, 12.82, 12.83, 12.84)
    for i, x in enumerate(vals):
        assert r.check("b", {"V": x}, 3000 + i * 1000) is None
    assert r.check("b", {"V": 12.85}, 8000) == "change"
    assert r.changed == ["V"]
    assert r.check("b", {"V": 12.86}, 9000) is None  # new reference 12.85


def test_current_and_power_absolute_or_percent():
    r = R.Reporter(heartbeat_s=3600)
    # small current: the 0.5 A floor applies
    r.check("m", {"I": 1.0}, 0)
    assert r.check("m", {"I": 1.45}, 1) is None
    assert r.check("m", {"I": 1.5}, 2) == "change"
    # large current: 5 % of 50 A = 2.5 A
    r.check("m2", {"I": 50.0}, 0)
    assert r.check("m2", {"I": 52.4}, 1) is None
    assert r.check("m2", {"I": 47.5}, 2) == "change"
    # power: max(10 W, 5 %): 5 % of 1000 W = 50 W
    r.check("inv", {"P": 1000}, 0)
    assert r.check("inv", {"P": 1049}, 1) is None
    assert r.check("inv", {"P": 950}, 2) == "change"
    r.check("dc", {"P": 40}, 0)
    assert r.check("dc", {"P": 49}, 1) is None
    assert r.check("dc", {"P": 30}, 2) == "change"
    # the defaults of a unit can be replaced (here the tighter 0.2 A | 2 %)
    r3 = R.Reporter(heartbeat_s=3600, unit_deadbands={"A": (0.2, 2), "W": 5})
    r3.check("m", {"I": 1.0, "P": 40}, 0)
    assert r3.check("m", {"I": 1.15, "P": 44}, 1) is None
    assert r3.check("m", {"I": 1.2, "P": 44}, 2) == "change"
    assert r3.check("m", {"I": 1.2, "P": 49}, 3) == "change"
    assert r3.deadband("m", "I") == (0.2, 2) and r3.deadband("m", "P") == (5, 0)
    # per-field defaults beat the unit: AC voltage wanders by volts
    assert r3.deadband("m", "AC_OUT_V") == (2, 0)


def test_states_publish_on_any_change_and_none_transitions():
    r = R.Reporter(heartbeat_s=3600)
    r.check("mppt", {"CS": 3, "ERR": 0, "LOAD": True, "SOC": 80.0, "TTG": None}, 0)
    assert r.check("mppt", {"CS": 4, "ERR": 0, "LOAD": True, "SOC": 80.0, "TTG": None}, 1) == "change"
    assert r.changed == ["CS"]
    assert r.check("mppt", {"CS": 4, "ERR": 0, "LOAD": False, "SOC": 80.0, "TTG": None}, 2) == "change"
    assert r.changed == ["LOAD"]
    # null -> number and back
    assert r.check("mppt", {"CS": 4, "ERR": 0, "LOAD": False, "SOC": 80.0, "TTG": 600}, 3) == "change"
    assert r.check("mppt", {"CS": 4, "ERR": 0, "LOAD": False, "SOC": 80.0, "TTG": None}, 4) == "change"
    # % deadband 0.5
    assert r.check("mppt", {"CS": 4, "ERR": 0, "LOAD": False, "SOC": 80.4, "TTG": None}, 5) is None
    assert r.check("mppt", {"CS": 4, "ERR": 0, "LOAD": False, "SOC": 79.5, "TTG": None}, 6) == "change"
    # strings (text labels)
    r.check("x", {"FW": "159"}, 0)
    assert r.check("x", {"FW": "160"}, 1) == "change"


def test_fields_appearing_or_disappearing_are_changes():
    r = R.Reporter(heartbeat_s=3600)
    r.check("d", {"V": 12.0}, 0)
    assert r.check("d", {"V": 12.0, "I": 0.0}, 1) == "change"
    assert r.changed == ["I"]
    assert r.check("d", {"V": 12.0}, 2) == "change"
    assert r.changed == ["I"]


def test_overrides_per_field_and_per_device():
    r = R.Reporter(heartbeat_s=3600, deadbands={"V": 0.2, "house.V": 0.01, "P": (0, 10), "CS": 5})
    r.check("house", {"V": 12.0}, 0)
    r.check("solar", {"V": 12.0, "P": 100, "CS": 3}, 0)
    assert r.check("house", {"V": 12.01}, 1) == "change"
    assert r.check("solar", {"V": 12.15, "P": 100, "CS": 3}, 1) is None
    assert r.check("solar", {"V": 12.0, "P": 109, "CS": 3}, 2) is None  # 10 % of 100
    assert r.check("solar", {"V": 12.0, "P": 110, "CS": 3}, 3) == "change"
    assert r.check("solar", {"V": 12.0, "P": 110, "CS": 7}, 4) is None  # an absolute 5 on a state
    assert R.Reporter().deadband("x", "V") == (0.05, 0)
    assert R.Reporter().deadband("x", "nonexistent") == (0, 0)


def test_min_interval_holds_off_then_publishes_pending_change():
    r = R.Reporter(heartbeat_s=60, min_interval_ms=5000)
    r.check("d", {"P": 100}, 0)
    assert r.check("d", {"P": 200}, 1000) is None  # held off
    assert r.check("d", {"P": 200}, 4999) is None
    assert r.check("d", {"P": 200}, 5000) == "change"
    # a spike that reverts inside the hold-off is never published
    assert r.check("d", {"P": 900}, 6000) is None
    assert r.check("d", {"P": 200}, 10000) is None


def test_due_does_not_record_until_sent():
    r = R.Reporter(heartbeat_s=10)
    assert r.due("d", {"V": 1.0}, 0) == "first"
    assert r.due("d", {"V": 1.0}, 1) == "first"  # publish failed: still due
    r.sent("d", {"V": 1.0}, 1)
    assert r.due("d", {"V": 1.0}, 2) is None
    r.forget("d")
    assert r.due("d", {"V": 1.0}, 3) == "first"


def test_caller_mutating_values_does_not_move_reference():
    r = R.Reporter(heartbeat_s=3600)
    v = {"V": 12.0}
    r.check("d", v, 0)
    v["V"] = 13.0  # the decoder reuses its dict
    assert r.check("d", v, 1) == "change"


def test_tick_wraparound():
    r = R.Reporter(heartbeat_s=60)
    start = 0x40000000 - 30000  # 30 s before ticks_ms wraps
    r.check("d", {"V": 1.0}, start)
    assert r.check("d", {"V": 1.0}, (start + 59000) & 0x3FFFFFFF) is None
    assert r.check("d", {"V": 1.0}, (start + 60000) & 0x3FFFFFFF) == "heartbeat"
    assert R.tdiff(5, 0x3FFFFFFB) == 10


def test_device_table_bounded():
    r = R.Reporter()
    for i in range(20):
        r.check("dev%d" % i, {"V": 1.0}, 0)
    assert r.untracked == 4
    # an untracked device is reported every time rather than never
    assert r.check("dev19", {"V": 1.0}, 1) == "first"


def test_random_walk_rate_is_bounded():
    # 1 block/s for an hour of a noisy battery voltage (+-0.02 V noise) and a
    # load current stepping around: far fewer publishes than blocks
    rng = Rng(7)
    r = R.Reporter(heartbeat_s=60)
    n = 0
    v = 12.8
    for s in range(3600):
        v += (rng.below(5) - 2) * 0.002
        noise = (rng.below(41) - 20) * 0.001
        i = 5.0 if (s // 300) % 2 else 12.0
        if r.check("b", {"V": round(v + noise, 2), "I": i, "CS": 3}, s * 1000):
            n += 1
    assert 60 <= n <= 200, n  # 60 heartbeats; naive would be 3600


def test_aligned_windows_publish_together():
    r = R.Reporter(heartbeat_s=300, min_interval_ms=60000, aligned=True)
    # three devices first seen at different seconds
    for i, d in enumerate(("a", "b", "c")):
        r.check(d, {"P": 100}, 10000 + i * 7000)
    # all change at once mid-window: nobody publishes before the boundary
    for t in range(30000, 60000, 1000):
        for d in ("a", "b", "c"):
            assert r.check(d, {"P": 200}, t) is None, (d, t)
    # at the first block of the next window all three publish
    assert [r.check(d, {"P": 200}, 60000) for d in ("a", "b", "c")] == ["change"] * 3
    # one publish per window at most
    assert r.check("a", {"P": 300}, 61000) is None
    assert r.check("a", {"P": 300}, 120000) == "change"
    # aligned=False keeps the per-device hold-off
    r2 = R.Reporter(heartbeat_s=300, min_interval_ms=60000)
    r2.check("a", {"P": 100}, 10000)
    assert r2.check("a", {"P": 200}, 60000) is None
    assert r2.check("a", {"P": 200}, 70000) == "change"
