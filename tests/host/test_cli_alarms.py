"""Contract tests of `vegw alarms check` and `vegw alarms replay` through the
real CLI in a subprocess."""
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
VEGW = str(pathlib.Path(sys.executable).parent / "vegw")


def vegw(*args, stdin=None):
    return subprocess.run([VEGW, "alarms"] + [str(a) for a in args], input=stdin, capture_output=True,
                          text=True, cwd=str(ROOT), timeout=60)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def lines(*objs):
    return "".join(json.dumps(o) + "\n" for o in objs)


def events(stdout):
    return [json.loads(x) for x in stdout.splitlines()]


GOOD = """# site rules
low_bank: alarm: house.V < 24.0 and house.I < 10 for 5m clear house.V > 24.4 after 1m

pump: warning: house.P < -1000 for 10m
soc: info: house.soc < 30 clear 35
"""


def test_check_ok_prints_one_line_summary(tmp_path):
    r = vegw("check", write(tmp_path, "r.rules", GOOD))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok: 3 rules (1 alarm, 1 warning, 1 info)\n"
    assert r.stderr == ""


def test_check_reports_every_bad_rule_with_line_and_column(tmp_path):
    text = ("ok: info: house.V > 1\n"
            "\n"
            "low_bank: alarm: house.volts < 24\n"
            "x: alarm: house.V < 24 for 5\n"
            "# comment\n"
            "y: severe: house.V < 1\n")
    r = vegw("check", write(tmp_path, "r.rules", text))
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "line 3, column 18: unknown field 'house.volts'; did you mean 'house.V'?",
        "line 4, column 28: duration needs a unit: s, m, h or d (e.g. 5s)",
        "line 6, column 4: unknown severity 'severe'; expected info, warning or alarm",
    ]
    assert r.stdout == ""


def test_check_missing_or_binary_file_is_one_line_exit_2(tmp_path):
    r = vegw("check", tmp_path / "nope.rules")
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
    assert "nope.rules" in r.stderr
    p = tmp_path / "bin.rules"
    p.write_bytes(b"\xff\xfe\x00garbage")
    r = vegw("check", p)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


def test_check_with_device_list_and_config_json(tmp_path):
    rules = write(tmp_path, "r.rules", "a: info: hous.V > 1\n")
    r = vegw("check", rules, "--devices", "house,solar")
    assert r.returncode == 2
    assert r.stderr == "line 1, column 10: unknown device 'hous'; did you mean 'house'?\n"
    cfg = {"devices": [{"name": "house", "type": "vedirect"}, {"name": "shunt", "type": "ble"}],
           "alarms": {"rules": ["a: info: house.V > 1", "b: alarm: solar.PPV > 1"]}}
    r = vegw("check", write(tmp_path, "config.json", json.dumps(cfg)))
    assert r.returncode == 2
    assert r.stderr == "line 2, column 11: unknown device 'solar'; configured: house, shunt\n"


def test_replay_for_raises_at_first_block_at_or_after_duration(tmp_path):
    rules = write(tmp_path, "r.rules", GOOD)
    blocks = []
    for t in range(0, 700, 45):  # 0, 45, ... : 5 m after 0 is 300 -> first block at/after is 315
        v = 23.5 if t < 450 else 24.6
        blocks.append({"t": t, "device": "house", "V": v, "I": 2.0, "P": 48, "SOC": 80.0})
    r = vegw("replay", "--rules", rules, "-", stdin=lines(*blocks))
    assert r.returncode == 0, r.stderr
    # V > 24.4 from 450; after 1 m -> 510, first block at/after is 540
    assert events(r.stdout) == [
        {"t": 315, "rule": "low_bank", "event": "raised", "severity": "alarm"},
        {"t": 540, "rule": "low_bank", "event": "cleared", "severity": "alarm"},
    ]


def test_replay_input_file_stale_option_and_builtin_events(tmp_path):
    rules = write(tmp_path, "r.rules", "low: warning: house.V < 12 for 2m\n")
    blocks = [{"t": t, "device": "house", "V": 11.8} for t in (0, 30, 60, 150, 180, 210, 240, 270)]
    inp = write(tmp_path, "in.jsonl", lines(*blocks))
    # default stale 60 s: after the block at 60 the data is fresh until 120, which is
    # exactly the deadline (0 + 2 m): the condition held on fresh data for the whole
    # 2 minutes, so the rule raises at the next line (150), beside the stale events
    r = vegw("replay", "--rules", rules, inp)
    assert r.returncode == 0, r.stderr
    assert events(r.stdout) == [
        {"t": 150, "rule": "stale:house", "event": "raised", "severity": "warning"},
        {"t": 150, "rule": "low", "event": "raised", "severity": "warning"},
        {"t": 150, "rule": "stale:house", "event": "cleared", "severity": "warning"},
    ]
    # --stale 40: stale at 100 before the deadline at 120: the timer restarts at 150, raises at 270
    r = vegw("replay", "--rules", rules, "--stale", "40", "--no-builtin", inp)
    assert events(r.stdout) == [{"t": 270, "rule": "low", "event": "raised", "severity": "warning"}]
    # --stale 100: no staleness at all, raises at the first line at/after 120
    r = vegw("replay", "--rules", rules, "--stale", "100", inp)
    assert events(r.stdout) == [{"t": 150, "rule": "low", "event": "raised", "severity": "warning"}]


def test_replay_device_error_and_alarm_flags_from_decode_output(tmp_path):
    rules = write(tmp_path, "r.rules", "mppt17: alarm: solar.ERR == 17\n")
    inp = lines({"t": 0, "device": "solar", "V": 12.5, "ERR": 0, "CS": 3},
                {"t": 1, "device": "solar", "V": 12.5, "ERR": 17, "CS": 2},
                {"t": 2, "device": "house", "V": 12.1, "Alarm": True, "AR": 1, "Relay": False},
                {"t": 3, "device": "solar", "V": 12.5, "ERR": 0, "CS": 3})
    r = vegw("replay", "--rules", rules, "--values", stdin=inp)
    got = events(r.stdout)
    assert [(e["t"], e["rule"], e["event"]) for e in got] == [
        (1, "error:solar", "raised"), (1, "mppt17", "raised"), (2, "device_alarm:house", "raised"),
        (3, "error:solar", "cleared"), (3, "mppt17", "cleared")]
    assert got[1]["values"] == {"solar.ERR": 17}
    assert got[2]["values"]["reasons"] == ["low_voltage"]


def test_replay_ack_lines_clear_latched_rules(tmp_path):
    rules = write(tmp_path, "r.rules", "soc: alarm: house.SOC < 20 latch\n")
    inp = lines({"t": 0, "device": "house", "SOC": 15.0}, {"t": 10, "device": "house", "SOC": 50.0},
                {"t": 20, "ack": "soc"}, {"t": 30, "device": "house", "SOC": 50.0})
    r = vegw("replay", "--rules", rules, stdin=inp)
    assert [(e["t"], e["event"]) for e in events(r.stdout)] == [(0, "raised"), (20, "acknowledged"), (20, "cleared")]


def test_replay_metric_fields_in_rules(tmp_path):
    rules = write(tmp_path, "r.rules", "drain: warning: house.ah_out_today > 1\n")
    blocks = [{"t": 86400 * 10 + 60 * k, "device": "house", "V": 12.5, "I": -10.0, "P": -125, "SOC": 90.0}
              for k in range(10)]
    r = vegw("replay", "--rules", rules, stdin=lines(*blocks))
    # 10 A out: 1 Ah after 6 minutes, so > 1 Ah first at the 7th interval (k = 7)
    assert events(r.stdout) == [{"t": 86400 * 10 + 420, "rule": "drain", "event": "raised", "severity": "warning"}]


def test_replay_bad_rules_and_bad_input_lines(tmp_path):
    bad = write(tmp_path, "bad.rules", "x: alarm: house.V < \n")
    r = vegw("replay", "--rules", bad, stdin="")
    assert r.returncode == 2
    assert r.stderr == "line 1, column 21: expected DEVICE.FIELD or a number at end of rule\n"
    rules = write(tmp_path, "r.rules", "x: info: house.V < 12\n")
    inp = "not json\n" + lines({"device": "house", "V": 1}, {"t": 5, "device": "house", "V": 11.0},
                               {"t": 1, "device": "house", "V": 13.0})
    r = vegw("replay", "--rules", rules, stdin=inp)
    assert r.returncode == 0
    assert events(r.stdout) == [{"t": 5, "rule": "x", "event": "raised", "severity": "info"}]
    assert "skipped 3 input lines" in r.stderr and "Traceback" not in r.stderr
    r = vegw("replay", "--rules", rules, tmp_path / "missing.jsonl")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    r = vegw("replay", "--rules", tmp_path / "missing.rules", stdin="")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


def test_replay_keeps_float_times_and_rate_limits_flapping(tmp_path):
    rules = write(tmp_path, "r.rules", "f: info: house.V < 12\n")
    blocks = [{"t": 0.5 + k, "device": "house", "V": 11.0 if k % 2 == 0 else 13.0} for k in range(30)]
    r = vegw("replay", "--rules", rules, stdin=lines(*blocks))
    got = events(r.stdout)
    assert got[0] == {"t": 0.5, "rule": "f", "event": "raised", "severity": "info"}
    assert got[1] == {"t": 1.5, "rule": "f", "event": "cleared", "severity": "info"}
    assert len(got) == 30  # exact semantics by default: no flapping limit
    r = vegw("replay", "--rules", rules, "--rate-limit", stdin=lines(*blocks))
    got = events(r.stdout)
    assert got[20] == {"t": 20.5, "rule": "f", "event": "suppressed", "severity": "info"}
    assert len(got) == 21


def test_check_accepts_bom_and_crlf(tmp_path):
    p = tmp_path / "win.rules"
    p.write_bytes(b"\xef\xbb\xbfa: info: house.V > 1\r\n# c\r\nb: warning: house.I > 1 for 5m\r\n")
    r = vegw("check", p)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok: 2 rules (0 alarm, 1 warning, 1 info)\n"


def test_replay_fails_when_nothing_was_read(tmp_path):
    # a CSV export (not JSON lines): every line skipped, so "no events" would lie
    rules = write(tmp_path, "r.rules", GOOD)
    inp = write(tmp_path, "h.csv", "t,device,V\n" + "".join("%d,house,25.1\n" % (1000 + i) for i in range(30)))
    r = vegw("replay", "--rules", rules, inp)
    assert r.returncode == 2 and r.stdout == ""
    assert "skipped 31 input lines" in r.stderr and "nothing replayed" in r.stderr
    r = vegw("replay", "--rules", rules, "-", stdin="")
    assert r.returncode == 2 and "nothing replayed" in r.stderr
