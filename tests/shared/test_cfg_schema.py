# cfg_schema: the config schema shared by firmware and CLI. Runs under CPython
# and the MicroPython unix port (plain asserts, no pytest).
import cfg_schema
from _util import Rng

MP_HEAPSIZE = "2M"  # the 3,000-key test config, not the schema

KEY = "0123456789abcdef0123456789abcdef"


def good():
    return {
        "gateway": {"id": "site-042", "board": "esp32-devkit"},
        "wifi": [{"ssid": "cabin", "password": "correct horse"}],
        "mqtt": {"host": "broker.example", "username": "u", "password": "p4ss", "tls": True, "ca": "ca.pem"},
        "devices": [
            {"name": "house", "type": "vedirect", "uart": 1, "rx": 16, "tx": 17},
            {"name": "shunt", "type": "ble", "mac": "aa:bb:cc:dd:ee:ff", "key": KEY.upper()},
        ],
    }


def paths(errors):
    return [p for p, _ in errors]


def msg(errors, path):
    for p, m in errors:
        if p == path:
            return m
    raise AssertionError("no error at %s in %r" % (path, errors))


def msg_or_none(errors, path):
    for p, m in errors:
        if p == path:
            return m
    return None


def test_valid_config_gets_defaults():
    cfg, errors = cfg_schema.validate(good())
    assert errors == [], errors
    assert cfg["mqtt"]["port"] == 8883  # TLS default
    assert cfg["mqtt"]["prefix"] == "vegw"
    assert cfg["mqtt"]["discovery"] is True
    assert cfg["mqtt"]["keepalive"] == 60
    assert cfg["alarms"]["builtin"]["stale"] is True
    assert cfg["alarms"]["rules"] == []
    assert cfg["log"]["interval"] == 60
    assert cfg["ble"]["scan_interval_ms"] == 100
    assert cfg["modem"] is None
    assert cfg["devices"][0]["tx"] == 17
    assert cfg["devices"][1]["mac"] == "AA:BB:CC:DD:EE:FF"
    assert cfg["devices"][1]["key"] == KEY


def test_port_default_without_tls():
    c = good()
    c["mqtt"] = {"host": "127.0.0.1"}
    cfg, errors = cfg_schema.validate(c)
    assert errors == [], errors
    assert cfg["mqtt"]["port"] == 1883
    assert cfg["mqtt"]["tls"] is False


def test_short_ble_key_names_path_and_length():
    c = good()
    c["devices"][1]["key"] = KEY[:31]
    _, errors = cfg_schema.validate(c)
    assert paths(errors) == ["devices[1].key"], errors
    m = msg(errors, "devices[1].key")
    assert "32" in m and "31" in m, m


def test_non_hex_key_refused():
    c = good()
    c["devices"][1]["key"] = KEY[:31] + "g"
    _, errors = cfg_schema.validate(c)
    assert paths(errors) == ["devices[1].key"], errors


def test_every_error_reported_not_only_the_first():
    c = good()
    c["gateway"]["id"] = "Site 42"  # charset
    c["mqtt"]["port"] = 70000  # range
    c["mqtt"]["tls"] = "yes"  # type
    c["devices"][0]["uart"] = 0  # UART0 is the REPL
    c["devices"][1]["mac"] = "AA:BB:CC:DD:EE"  # format
    c["devices"].append({"name": "x", "type": "can"})  # enum
    _, errors = cfg_schema.validate(c)
    p = paths(errors)
    for want in ("gateway.id", "mqtt.port", "mqtt.tls", "devices[0].uart", "devices[1].mac", "devices[2].type"):
        assert want in p, (want, errors)
    assert "65535" in msg(errors, "mqtt.port")
    assert "true or false" in msg(errors, "mqtt.tls")
    assert "REPL" in msg(errors, "devices[0].uart")
    assert "vedirect" in msg(errors, "devices[2].type")


def test_required_fields():
    _, errors = cfg_schema.validate({"devices": [{"type": "ble"}]})
    p = paths(errors)
    for want in ("gateway.id", "mqtt.host", "devices[0].name", "devices[0].mac", "devices[0].key"):
        assert want in p, (want, errors)
    assert msg(errors, "gateway.id") == "required"


def test_unknown_keys_refused_with_hint():
    c = good()
    c["mqtt"]["user"] = "bob"
    c["devices"][1]["bindkey"] = KEY
    c["devices"][0]["buad"] = 19200
    c["mqtt"]["keepalve"] = 30
    c["loging"] = {}
    _, errors = cfg_schema.validate(c)
    assert "username" in msg(errors, "mqtt.user")
    assert "'key'" in msg(errors, "devices[1].bindkey")
    assert "did you mean 'keepalive'" in msg(errors, "mqtt.keepalve")
    assert "did you mean 'log'" in msg(errors, "loging")
    assert "unknown key" in msg(errors, "devices[0].buad")


def test_keys_of_the_other_device_type_explained():
    c = good()
    c["devices"][0]["key"] = KEY
    c["devices"][1]["rx"] = 4
    _, errors = cfg_schema.validate(c)
    assert "'ble'" in msg(errors, "devices[0].key")
    assert "'vedirect'" in msg(errors, "devices[1].rx")


def test_comment_keys_accepted_and_dropped():
    c = good()
    c["_comment"] = "top"
    c["mqtt"]["_comment_tls"] = "why"
    c["devices"][0]["_comment"] = "BMV"
    cfg, errors = cfg_schema.validate(c)
    assert errors == [], errors
    assert "_comment" not in cfg and "_comment_tls" not in cfg["mqtt"]
    assert "_comment" not in cfg["devices"][0]


def test_duplicate_names_and_charset():
    c = good()
    c["devices"][1]["name"] = "house"
    c["devices"].append({"name": "Solar 1", "type": "ble", "mac": "11:22:33:44:55:66", "key": KEY})
    _, errors = cfg_schema.validate(c)
    assert "devices[0]" in msg(errors, "devices[1].name")
    assert "a-z" in msg(errors, "devices[2].name")


def test_two_devices_on_one_pin():
    c = good()
    c["devices"].append({"name": "solar", "type": "vedirect", "uart": 2, "rx": 16})
    c["devices"].append({"name": "inv", "type": "vedirect", "uart": 2, "rx": 25, "tx": 16})
    _, errors = cfg_schema.validate(c)
    assert "GPIO 16" in msg(errors, "devices[2].rx")
    assert "devices[0]" in msg(errors, "devices[3].tx")


def test_shared_uart_is_time_sliced_warning():
    c = good()
    c["devices"].append({"name": "solar", "type": "vedirect", "uart": 1, "rx": 26})
    cfg, errors, warnings = cfg_schema.check(c)
    assert errors == [], errors
    assert "time-sliced" in msg(warnings, "devices")


def test_duplicate_mac():
    c = good()
    c["devices"].append({"name": "shunt2", "type": "ble", "mac": "AA:BB:CC:DD:EE:FF", "key": KEY})
    _, errors = cfg_schema.validate(c)
    assert paths(errors) == ["devices[2].mac"], errors


def test_username_without_password_refused():
    c = good()
    del c["mqtt"]["password"]
    _, errors = cfg_schema.validate(c)
    assert paths(errors) == ["mqtt.password"], errors


def test_cleartext_password_warns_unless_loopback():
    c = good()
    c["mqtt"] = {"host": "broker.example", "username": "u", "password": "p"}
    _, errors, warnings = cfg_schema.check(c)
    assert errors == []
    assert "TLS" in msg(warnings, "mqtt.tls")
    c["mqtt"]["host"] = "127.0.0.1"
    _, errors, warnings = cfg_schema.check(c)
    assert "mqtt.tls" not in paths(warnings)


def test_ca_without_tls_refused():
    c = good()
    c["mqtt"]["tls"] = False
    _, errors = cfg_schema.validate(c)
    assert paths(errors) == ["mqtt.ca"], errors


def test_wifi_and_modem_checks():
    c = good()
    c["wifi"].append({"ssid": "x", "password": "short"})
    c["modem"] = {"apn": "internet", "pin": "12a4"}
    cfg, errors = cfg_schema.validate(c)
    assert "8 to 63" in msg(errors, "wifi[1].password")
    assert "digits" in msg(errors, "modem.pin")
    assert cfg["modem"]["model"] == "sim7600"


def test_board_pins_checked():
    board = {
        "name": "testboard", "mcu": "esp32", "uarts": [1, 2], "repl": {"uart": 0, "tx": 1, "rx": 3},
        "vedirect": [], "modem": None, "relay": None, "led": None,
        "gpio": {"valid": [4, 5, 16, 17, 25, 26, 34, 35], "input_only": [34, 35],
                 "reserved": {"6": "flash", "7": "flash"}},
    }
    c = good()
    c["devices"].append({"name": "a", "type": "vedirect", "uart": 2, "rx": 34, "tx": 35})
    c["devices"].append({"name": "b", "type": "vedirect", "uart": 2, "rx": 6})
    c["devices"].append({"name": "c", "type": "vedirect", "uart": 2, "rx": 33})
    _, errors = cfg_schema.validate(c, board)
    p = paths(errors)
    assert "devices[2].tx" in p and "devices[2].rx" not in p, errors
    assert "devices[3].rx" in p and "devices[4].rx" in p, errors
    assert "devices[0].rx" not in p
    board["uarts"] = [1]
    _, errors = cfg_schema.validate(c, board)
    assert "devices[2].uart" in paths(errors) and "devices[0].uart" not in paths(errors), errors
    # without a board no pin checks
    _, errors = cfg_schema.validate(c)
    assert errors == [], errors


def test_alarm_rules_go_through_parser():
    c = good()
    c["alarms"] = {"rules": ["low_bank: alarm: house.V < 24.0 for 5m clear 24.4", 5, ""]}
    _, errors, warnings = cfg_schema.check(c)
    assert "alarms.rules[1]" in paths(errors) and "alarms.rules[2]" in paths(errors), errors
    try:
        import alarm_rules  # noqa: F401
    except ImportError:
        assert "alarms.rules" in paths(warnings)
        return
    c["alarms"] = {"rules": ["low_bank: alarm: house.V < 24.0 for 5m clear 24.4",
                             "bad: alarm: house.NOPE < 3"]}
    _, errors = cfg_schema.validate(c)
    assert [p for p in paths(errors) if p.startswith("alarms.rules")] == ["alarms.rules[1]"], errors


def test_masked_hides_secrets_only():
    c = good()
    c["modem"] = {"apn": "internet", "password": "m", "pin": "1234", "user": ""}
    m = cfg_schema.masked(c)
    assert m["mqtt"]["password"] == "***" and m["mqtt"]["username"] == "u"
    assert m["wifi"][0]["password"] == "***" and m["wifi"][0]["ssid"] == "cabin"
    assert m["devices"][1]["key"] == "***" and m["devices"][1]["mac"] == "aa:bb:cc:dd:ee:ff"
    assert m["modem"]["pin"] == "***" and m["modem"]["user"] == ""
    assert c["mqtt"]["password"] == "p4ss"  # original untouched


def test_not_an_object():
    cfg, errors = cfg_schema.validate([1, 2])
    assert paths(errors) == ["(top)"]
    _, errors = cfg_schema.validate({"gateway": "x", "mqtt": {"host": "h"}, "devices": {}, "wifi": None})
    assert "gateway" in paths(errors) and "devices" in paths(errors), errors


def _junk(rng, depth):
    k = rng.below(8 if depth < 3 else 5)
    if k == 0:
        return None
    if k == 1:
        return rng.below(2) == 1
    if k == 2:
        return rng.below(100000) - 500
    if k == 3:
        return rng.below(1000) / 7.0
    if k == 4:
        return ["", "house", "AA:BB", KEY, "vedirect", "ble", "x" * 40][rng.below(7)]
    if k == 5:
        return [_junk(rng, depth + 1) for _ in range(rng.below(4))]
    keys = ("gateway", "mqtt", "devices", "name", "type", "mac", "key", "rx", "uart", "port",
            "host", "wifi", "alarms", "rules", "builtin", "log", "ble", "modem", "pin", "zzz")
    d = {}
    for _ in range(rng.below(6)):
        d[keys[rng.below(len(keys))]] = _junk(rng, depth + 1)
    return d


def test_fuzz_never_raises():
    rng = Rng(7)
    for _ in range(300):
        cfg = _junk(rng, 0)
        out, errors, warnings = cfg_schema.check(cfg)
        assert isinstance(errors, list) and isinstance(warnings, list)
        for e in errors:
            assert isinstance(e[0], str) and isinstance(e[1], str)
    # a structured mutation of a good config
    for i in range(200):
        c = good()
        sec = ("gateway", "mqtt", "devices")[rng.below(3)]
        c[sec] = _junk(rng, 1)
        cfg_schema.check(c)


def test_error_cap():
    c = good()
    c["devices"] = [{"name": "A%d" % i} for i in range(40)]
    _, errors = cfg_schema.validate(c)
    assert len(errors) <= 65
    assert errors[-1][0] == "(more)"


def test_key_and_mac_normalized():
    c = good()
    c["devices"][1]["key"] = " " + KEY.upper() + "\n"
    c["devices"][1]["mac"] = "aa-bb-cc-dd-ee-0f"
    cfg, errors = cfg_schema.validate(c)
    assert errors == [], errors
    assert cfg["devices"][1]["key"] == KEY
    assert cfg["devices"][1]["mac"] == "AA:BB:CC:DD:EE:0F"


def test_short_key_message_exact():
    c = good()
    c["devices"][1]["key"] = KEY[:31]
    _, errors = cfg_schema.validate(c)
    assert errors == [("devices[1].key", "must be 32 hex characters, got 31")], errors


def test_key_mac_pin_and_uart_checks_are_their_modules_own():
    # one implementation each: ble_keys for keys and MACs, boardinfo for
    # pins and UARTs (cfg_schema kept weaker copies as fallbacks once)
    import ble_keys
    import boardinfo

    c = good()
    c["devices"][1]["key"] = KEY[:31]
    c["devices"][1]["mac"] = "aa-bb-cc-dd-ee-ff"
    c["devices"].append({"name": "b", "type": "ble", "mac": "AA:BB:CC:DD:EE", "key": KEY[:31] + "x"})
    c["devices"].append({"name": "v", "type": "vedirect", "uart": 2, "rx": 6, "tx": 34})
    board = {"name": "tb", "uarts": [1], "gpio": {"valid": [16, 17, 34], "input_only": [34],
                                                 "reserved": {"6": "flash"}}}
    cfg, errors, warnings = cfg_schema.check(c, board)
    assert msg(errors, "devices[1].key") in ble_keys.key_problem(KEY[:31])
    assert "devices[1].mac" not in paths(errors) and cfg["devices"][1]["mac"] == "AA:BB:CC:DD:EE:FF"
    assert msg(errors, "devices[2].mac") in ble_keys.mac_problem("AA:BB:CC:DD:EE")
    assert msg(errors, "devices[2].key") in ble_keys.key_problem(KEY[:31] + "x")
    assert msg(errors, "devices[3].rx") == boardinfo.pin_problem(board, 6, "vedirect rx") and "reserved" in msg(
        errors, "devices[3].rx")
    assert msg(errors, "devices[3].tx") == boardinfo.pin_problem(board, 34, "vedirect tx")
    assert msg(errors, "devices[3].uart") == boardinfo.uart_problem(board, 2)


def test_a_modem_brings_the_thin_uplink_unless_set():
    base = {"gateway": {"id": "cell1"}, "mqtt": {"host": "broker.example"},
            "modem": {"model": "sim7600", "apn": "internet"}, "devices": []}
    norm, errors = cfg_schema.validate(base)
    assert not errors, errors
    m = norm["mqtt"]
    assert m["uplink"] == "thin" and m["discovery"] == "bridge"
    assert (m["min_interval"], m["heartbeat"], m["status_interval"], m["keepalive"], m["log_hold"]) == (
        60, 3600, 3600, 240, 900)
    base["mqtt"]["uplink"] = "full"  # the old cellular profile
    m = cfg_schema.validate(base)[0]["mqtt"]
    assert (m["min_interval"], m["heartbeat"], m["status_interval"], m["discovery"]) == (300, 900, 900, True)
    base["mqtt"]["min_interval"] = 60  # set explicitly: kept
    m = cfg_schema.validate(base)[0]["mqtt"]
    assert (m["min_interval"], m["heartbeat"]) == (60, 900)
    del base["modem"]
    del base["mqtt"]["min_interval"]
    del base["mqtt"]["uplink"]
    m = cfg_schema.validate(base)[0]["mqtt"]
    assert (m["min_interval"], m["heartbeat"], m["status_interval"], m["uplink"]) == (10, 300, 300, "full")
    base["mqtt"]["uplink"] = "thin"  # an option on Wi-Fi, with the same profile
    base["mqtt"]["discovery"] = True
    m = cfg_schema.validate(base)[0]["mqtt"]
    assert (m["heartbeat"], m["log_hold"], m["discovery"]) == (3600, 900, True)
    base["mqtt"]["discovery"] = "yes"
    errors = cfg_schema.validate(base)[1]
    assert errors and errors[0][0] == "mqtt.discovery", errors


# ---- inputs that differ between runtimes or explode the work (issue 23.10)

def test_ssid_and_passphrase_lengths_are_bytes():
    c = good()
    c["wifi"] = [{"ssid": "caf\u00e9\U0001F600" * 5, "password": "\u00e9\u00e9\u00e9\u00e9"}]  # 25 chars, 45 bytes
    _, errors = cfg_schema.validate(c)
    m = msg(errors, "wifi[0].ssid")
    assert "32 bytes" in m and "45" in m, m
    # 4 characters but 8 bytes: WPA takes it
    assert msg_or_none(errors, "wifi[0].password") is None
    c["wifi"] = [{"ssid": "\U0001F600" * 8, "password": "x" * 8}]  # 8 characters, 32 bytes
    _, errors = cfg_schema.validate(c)
    assert msg_or_none(errors, "wifi[0].ssid") is None


def test_huge_values_give_short_messages():
    c = good()
    c["gateway"]["board"] = "x" * 5000
    c["mqtt"]["port"] = int("9" * 400)
    c["y" * 5000] = 1
    _, errors = cfg_schema.validate(c)
    assert errors
    for path, m in errors:
        assert len(path) < 100 and len(m) < 300, (path[:50], m[:50])
    assert "must be between 1 and 65535" in msg(errors, "mqtt.port")


def test_thousands_of_unknown_keys_do_bounded_work():
    c = good()
    for i in range(3000):
        c["unknown_key_%d" % i] = i
    calls = [0]
    real = cfg_schema._distance

    def counting(a, b):
        calls[0] += 1
        return real(a, b)

    cfg_schema._distance = counting
    try:
        out, errors, _ = cfg_schema.check(c)
    finally:
        cfg_schema._distance = real
    assert len(errors) == 64 + 1 and errors[-1][0] == "(more)"  # _MAX_ERRORS (a const: not an attribute on MicroPython)
    # hints only for the errors shown, each against the top-level names
    assert 0 < calls[0] <= 64 * 10, calls[0]


def test_tls_without_ca_warns_and_ota_key_checked():
    c = good()
    c["mqtt"]["ca"] = ""
    out, errors, warnings = cfg_schema.check(c)
    assert not errors
    w = [m for p, m in warnings if p == "mqtt.ca"]
    assert w and "not verified" in w[0]
    c = good()
    c["ota"] = {"key": "zz" * 32}
    _, errors = cfg_schema.validate(c)
    assert "must be hex" in msg(errors, "ota.key")
    c["ota"] = {"key": "ab" * 32}
    out, errors = cfg_schema.validate(c)
    assert not errors and out["ota"]["key"] == "ab" * 32
    assert cfg_schema.validate(good())[0]["ota"]["key"] is None  # no key: OTA refused on the gateway


def test_no_error_or_warning_echoes_a_secret():
    # the texts go back over MQTT in a refused `vegw config push` reply and
    # into logs: a wrong password, PIN or key is named, never shown
    marker = "S3cr3tQ"
    cases = (
        ("wifi", [{"ssid": "cabin", "password": marker[:5]}]),  # too short for WPA
        ("wifi", [{"ssid": "cabin", "password": marker * 10}]),  # too long
        ("wifi", [{"ssid": "cabin", "password": [marker]}]),  # not a string
        ("mqtt", {"host": "broker.example", "username": "u", "password": marker * 20, "tls": True, "ca": "c"}),
        ("mqtt", {"host": "broker.example", "password": marker}),  # no username
        ("mqtt", {"host": "broker.example", "username": "u", "password": {"v": marker}, "tls": True, "ca": "c"}),
        ("modem", {"model": "sim7600", "apn": "internet", "pin": marker}),
        ("modem", {"model": "sim7600", "apn": "internet", "pin": marker * 3}),
        ("ota", {"key": marker * 8}),
        ("ota", {"key": "ab" + marker}),
    )
    for section, value in cases:
        c = good()
        c[section] = value
        cfg, errors, warnings = cfg_schema.check(c, None)
        assert errors or warnings, (section, value)
        for p, m in list(errors) + list(warnings):
            assert marker not in m and marker[:5] not in m, (p, m)
    # BLE keys: a bad key is described by its length or a bad character's
    # position, never echoed
    for key in (marker * 4 + "abcd", "0" * 31 + "Q", marker):
        c = good()
        c["devices"][1]["key"] = key
        cfg, errors, warnings = cfg_schema.check(c, None)
        for p, m in list(errors) + list(warnings):
            assert marker not in m and key not in m, (p, m)
