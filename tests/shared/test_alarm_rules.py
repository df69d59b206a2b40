# Rule language: table-driven valid and invalid rules with exact messages.
import alarm_rules as R

OK = R.default_field_ok(None)
OK_DEVS = R.default_field_ok(["house", "solar", "inverter"])


def one(line, field_ok=OK):
    rules, errors = R.parse_rules([line], field_ok)
    assert errors == [], errors
    assert len(rules) == 1
    return rules[0]


def err(line, field_ok=OK):
    rules, errors = R.parse_rules([line], field_ok)
    assert rules == [], rules
    assert len(errors) == 1, errors
    return errors[0]


H_V = ("house", "V")
H_I = ("house", "I")

# (rule text, name, severity, cond RPN, for_s, clear RPN or None, after_s, latch)
VALID = (
    ("low_bank: alarm: house.V < 24.0 and house.I < 10 for 5m clear house.V > 24.4 after 1m",
     "low_bank", 2, ((0, H_V, 24.0, False), (0, H_I, 10, False), (6, None, None, False)),
     300, ((2, H_V, 24.4, False),), 60, False),
    ("hyst: warning: house.V < 24.0 for 30s clear 24.4",
     "hyst", 1, ((0, H_V, 24.0, False),), 30, ((3, H_V, 24.4, False),), 0, False),
    ("hi: info: house.V >= 29 clear 28.5",
     "hi", 0, ((3, H_V, 29, False),), 0, ((1, H_V, 28.5, False),), 0, False),
    # aliases resolve to the canonical label
    ("a: alarm: house.voltage <= 23",
     "a", 2, ((1, H_V, 23, False),), 0, None, 0, False),
    ("soc: warning: house.soc < 30 latch",
     "soc", 1, ((0, ("house", "SOC"), 30, False),), 0, None, 0, True),
    # number first is flipped so the value is always on the left
    ("flip: alarm: 24 > house.V",
     "flip", 2, ((0, H_V, 24, False),), 0, None, 0, False),
    # value against value, not / or / parentheses; not binds tighter than and, and than or
    ("vv: warning: not (house.V == solar.V or house.I != 0) and solar.PPV > 1000 for 10m",
     "vv", 1, ((4, H_V, ("solar", "V"), True), (5, H_I, 0, False), (7, None, None, False),
               (8, None, None, False), (2, ("solar", "PPV"), 1000, False), (6, None, None, False)),
     600, None, 0, False),
    ("prec: info: house.V < 1 or house.V > 2 and house.I > 3",
     "prec", 0, ((0, H_V, 1, False), (2, H_V, 2, False), (2, H_I, 3, False),
                 (6, None, None, False), (7, None, None, False)), 0, None, 0, False),
    # durations in every unit, clauses in any order, negative and hex numbers, booleans
    ("d: alarm: house.I < -150.5 after 2h for 1d", "d", 2, ((0, H_I, -150.5, False),), 86400, None, 7200, False),
    ("e: alarm: solar.ERR == 17", "e", 2, ((4, ("solar", "ERR"), 17, False),), 0, None, 0, False),
    ("ar: warning: house.AR != 0x80 clear house.AR == 0", "ar", 1, ((5, ("house", "AR"), 0x80, False),), 0,
     ((4, ("house", "AR"), 0, False),), 0, False),
    ("b: info: house.Alarm == true", "b", 0, ((4, ("house", "Alarm"), 1, False),), 0, None, 0, False),
    ("ac: info: inverter.AC_OUT_S>=1500", "ac", 0, ((3, ("inverter", "AC_OUT_S"), 1500, False),), 0, None, 0, False),
    ("sn: info: house.SER# == 5 # trailing comment", "sn", 0, ((4, ("house", "SER#"), 5, False),), 0, None, 0, False),
    # derived metrics are fields too
    ("md: warning: house.mid_dev_abs > 2 for 5m", "md", 1, ((2, ("house", "mid_dev_abs"), 2, False),),
     300, None, 0, False),
    ("avg: info: house.soc_avg_30d < 50", "avg", 0, ((0, ("house", "soc_avg_30d"), 50, False),), 0, None, 0, False),
)


def test_valid_rules_compile_to_rpn():
    for row in VALID:
        r = one(row[0])
        assert r[:7] == row[1:], (row[0], r)
        assert r[8] == 1 and r[7] is False  # line; allow_ble


# (rule text, column, exact message)
INVALID = (
    ("low_bank: alarm: house.volts < 24", 18, "unknown field 'house.volts'; did you mean 'house.V'?"),
    ("x: alarm: house.SOCC < 24", 11, "unknown field 'house.SOCC'; did you mean 'house.SOC'?"),
    ("x: alarm: house.zzzzzzzz < 24", 11, "unknown field 'house.zzzzzzzz'"),
    ("x: critical: house.V < 24", 4, "unknown severity 'critical'; expected info, warning or alarm"),
    ("x alarm: house.V < 24", 3, "expected ':' after the rule name"),
    ("x: alarm house.V < 24", 10, "expected ':' after the severity"),
    ("x:", 3, "expected a severity: info, warning or alarm"),
    ("x: alarm:", 10, "expected a condition"),
    ("x: alarm: for 5m", 11, "expected a condition"),
    ("12: alarm: house.V < 1", 1, "a rule name must start with a letter or '_'"),
    ("  2nd: alarm: house.V < 1", 3, "a rule name must start with a letter or '_'"),
    ("(x): alarm: house.V < 1", 1, "expected a rule name ('NAME: SEVERITY: CONDITION')"),
    ("x: alarm: house.V", 18, "expected a comparison (< <= > >= == !=) after 'house.V'"),
    ("x: alarm: house.V 24", 19, "expected a comparison (< <= > >= == !=), got '24'"),
    ("x: alarm: house.V <", 20, "expected DEVICE.FIELD or a number at end of rule"),
    ("x: alarm: house.V = 24", 19, "use '==' to compare"),
    ("x: alarm: house.V < V", 21, "expected DEVICE.FIELD, got 'V'"),
    ("x: alarm: 1 < 2", 11, "a comparison needs DEVICE.FIELD on one side"),
    ("x: alarm: (house.V < 1 or house.I > 2", 11, "missing ')' for this '('"),
    ("x: alarm: house.V < 1)", 22, "unexpected ')'; expected and, or, for, clear, after, latch or allow_ble"),
    ("x: alarm: house.V < 1 for 5", 27, "duration needs a unit: s, m, h or d (e.g. 5s)"),
    ("x: alarm: house.V < 1 for", 26, "expected a duration after 'for' (e.g. 30s, 5m, 2h, 1d)"),
    ("x: alarm: house.V < 1 for 5min", 27, "bad number or duration '5min'; durations look like 30s, 5m, 2h, 1d"),
    ("x: alarm: house.V < 1 for 5m for 6m", 30, "'for' given twice"),
    ("x: alarm: house.V < 1 latch latch", 29, "'latch' given twice"),
    ("x: alarm: house.V < 1 until 5m", 23, "unexpected 'until'; expected and, or, for, clear, after, latch or allow_ble"),
    ("x: alarm: house.V < 1 clear", 28, "expected a condition or a number after 'clear'"),
    ("x: alarm: house.V < 24 clear 23", 30, "clear level 23 is below the alarm level 24 of '<'"),
    ("x: alarm: house.V > 24 clear 25", 30, "clear level 25 is above the alarm level 24 of '>'"),
    ("x: alarm: house.V < 24 and house.I < 1 clear 25", 46,
     "'clear NUMBER' needs a condition that is one comparison (< <= > >=) with a number; use 'clear CONDITION'"),
    ("x: alarm: house.V == 24 clear 25", 31,
     "'clear NUMBER' needs a condition that is one comparison (< <= > >=) with a number; use 'clear CONDITION'"),
    ("x: alarm: house.V < 1.2.3", 21, "bad number '1.2.3'"),
    ("x: alarm: house.V < 24 $", 24, "unexpected character '$'"),
    ("x: alarm: house. < 24", 11, "expected a field name after 'house.'"),
    ("x: alarm: house.V < 1 and", 26, "expected DEVICE.FIELD or a number at end of rule"),
)


def test_invalid_rules_exact_line_column_message():
    for text, col, msg in INVALID:
        e = err(text)
        assert e == (1, col, msg), (text, e)


def test_unknown_device_with_device_list():
    assert err("x: alarm: hous.V < 1", OK_DEVS) == (1, 11, "unknown device 'hous'; did you mean 'house'?")
    assert err("x: alarm: zz.V < 1", OK_DEVS) == (1, 11, "unknown device 'zz'; configured: house, solar, inverter")
    assert err("x: alarm: house.V < solar.volts", OK_DEVS) == (
        1, 21, "unknown field 'solar.volts'; did you mean 'solar.V'?")
    assert one("x: alarm: house.V < solar.V", OK_DEVS)[2][0][2] == ("solar", "V")


def test_file_lines_comments_blank_and_one_error_per_bad_line():
    text = "\n".join((
        "# rules for site 42",
        "",
        "low_bank: alarm: house.V < 24.0 for 5m clear 24.4",
        "   # indented comment",
        "bad1: alarm: house.volts < 24",
        "bad2: alarm: house.V < 24 for 5 clear house.V >",
        "ok2: info: solar.PPV > 100",
        "low_bank: warning: house.V < 23",
    ))
    rules, errors = R.parse_rules(text, OK)
    assert [r[0] for r in rules] == ["low_bank", "ok2"]
    assert [r[8] for r in rules] == [3, 7]
    assert errors == [
        (5, 14, "unknown field 'house.volts'; did you mean 'house.V'?"),
        (6, 31, "duration needs a unit: s, m, h or d (e.g. 5s)"),
        (8, 1, "duplicate rule name 'low_bank' (first on line 3)"),
    ]


def test_config_list_and_outside_input_never_raises():
    rules, errors = R.parse_rules(["a: info: house.V > 1", 7, "x" * 500, "(((((((((((((((((((("], OK)
    assert len(rules) == 1
    assert errors[0] == (2, 1, "rule must be a string")
    assert errors[1] == (3, 401, "rule longer than 400 characters")
    assert errors[2][0] == 4
    deep = "n: info: " + "not " * 20 + "house.V > 1"
    rules, errors = R.parse_rules([deep], OK)
    assert rules == [] and errors[0][2] == "condition nested too deeply (at most 16 levels)"
    # arbitrary bytes-ish junk: errors, never an exception
    junk = "".join(chr(32 + (i * 37) % 90) for i in range(300))
    for k in range(0, 280, 7):
        R.parse_rules([junk[k:k + 40]], OK)


def test_custom_field_ok_message_is_used_verbatim():
    def field_ok(device, field):
        return None if field == "V" else "nope %s/%s" % (device, field)

    assert err("x: info: a.I > 1", field_ok) == (1, 10, "nope a/I")
    r = one("x: info: a.V > 1", field_ok)
    assert r[2] == ((2, ("a", "V"), 1, False),)


def test_whole_durations_are_ints():
    r = one("x: info: house.V > 1 for 1.5h after 0.5s")
    assert r[3] == 5400 and type(r[3]) is int
    assert r[5] == 0.5


def test_suggest_and_refs():
    assert R.suggest("volts", ["V", "VS", "voltage"]) == "voltage"
    assert R.suggest("qqqqqqqq", ["V", "I"]) is None
    r = one("x: info: house.V > solar.V clear house.I < 2")
    assert R.refs(r) == [("house", "V"), ("solar", "V"), ("house", "I")]
