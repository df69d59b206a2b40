# Board files: every board validates, pins are sane, no reserved pin takes a
# role; and boardinfo's answers to config validation. Both runtimes.
import json
import os

import boardinfo as bi

BOARDS = ("esp32-devkit", "esp32s3-devkit", "esp32s3-devkit-n8", "lilygo-t-sim7600", "lilygo-t-a7670")


def _board(name):
    b, problems = bi.load_board(name)
    assert b is not None, problems
    return b


def _copy(b):
    return json.loads(json.dumps(b))


def test_required_boards_present_and_valid():
    # every folder of boards/ is a board, except common/ (shared build files)
    names = [n for n in os.listdir("boards") if not n.startswith(".") and n != "common" and "." not in n]
    for name in BOARDS:
        assert name in names, name
    for name in names:
        b, problems = bi.load_board(name)
        assert b is not None, name
        assert problems == [], (name, problems)
        assert b["name"] == name


def test_no_reserved_pin_takes_a_role_and_no_pin_twice():
    for name in BOARDS:
        b = _board(name)
        seen = []
        pins = []
        for port in b["vedirect"]:
            pins.append((port["rx"], "vedirect rx"))
            if port.get("tx") is not None:
                pins.append((port["tx"], "vedirect tx"))
        for r in bi.MODEM_ROLES:
            if b["modem"] and b["modem"].get(r) is not None:
                pins.append((b["modem"][r], "modem " + r))
        for k in ("relay", "led"):
            if b[k]:
                pins.append((b[k]["pin"], k))
        for pin, role in pins:
            assert str(pin) not in b["gpio"]["reserved"], (name, pin, role)
            assert bi.pin_problem(b, pin, role) is None, (name, pin, role)
            assert pin not in seen, (name, pin)
            seen.append(pin)
        # UART0 pins are reserved, and no role sits on them
        assert str(b["repl"]["tx"]) in b["gpio"]["reserved"] and str(b["repl"]["rx"]) in b["gpio"]["reserved"]
        assert 0 not in b["uarts"]


def test_modem_boards():
    for name, model in (("lilygo-t-sim7600", "sim7600"), ("lilygo-t-a7670", "a7670")):
        b = _board(name)
        m = b["modem"]
        assert m["model"] == model and m["uart"] in b["uarts"]
        assert m["rx"] != m["tx"] and m["pwrkey"] is not None
        for port in b["vedirect"]:
            assert port["uart"] != m["uart"]
        assert bi.free_uarts(b) == [2]
    assert _board("lilygo-t-a7670")["modem"]["power"] == 12
    assert _board("esp32-devkit")["modem"] is None


def test_pin_problems_esp32():
    b = _board("esp32-devkit")
    assert "reserved" in bi.pin_problem(b, 6, "vedirect rx")
    assert "flash" in bi.pin_problem(b, 9, "relay")
    assert "REPL" in bi.pin_problem(b, 1, "vedirect tx")
    assert "REPL" in bi.pin_problem(b, 3, "vedirect rx")
    assert "input-only" in bi.pin_problem(b, 34, "vedirect tx")
    assert "input-only" in bi.pin_problem(b, 39, "relay")
    assert bi.pin_problem(b, 34, "vedirect rx") is None
    assert "held high" in bi.pin_problem(b, 12, "vedirect rx")
    assert bi.pin_problem(b, 12, "relay") is None
    assert bi.pin_warnings(b, 12, "relay") and "strapping" in bi.pin_warnings(b, 12, "relay")[0]
    assert bi.pin_warnings(b, 16, "vedirect rx") == []
    assert "does not exist" in bi.pin_problem(b, 40, "vedirect rx")
    assert "does not exist" in bi.pin_problem(b, 24, "vedirect rx")
    assert "does not exist" in bi.pin_problem(b, 37, "vedirect rx")
    assert "not a GPIO" in bi.pin_problem(b, "16", "vedirect rx")
    assert "not a GPIO" in bi.pin_problem(b, True, "vedirect rx")
    assert "not a GPIO" in bi.pin_problem(b, None, "relay")
    assert "wired to the relay" in bi.pin_problem(b, 23, "vedirect rx")
    assert bi.pin_problem(b, 23, "relay") is None


def test_pin_problems_s3_and_wrover():
    s3 = _board("esp32s3-devkit")
    assert "flash" in bi.pin_problem(s3, 26, "vedirect rx")
    assert "PSRAM" in bi.pin_problem(s3, 35, "vedirect rx")
    assert "REPL" in bi.pin_problem(s3, 43, "vedirect tx")
    assert "USB" in bi.pin_problem(s3, 19, "relay")
    assert "held high" in bi.pin_problem(s3, 45, "vedirect rx")
    assert bi.pin_problem(s3, 10, "vedirect rx") is None
    assert "does not exist" in bi.pin_problem(s3, 22, "relay")
    t = _board("lilygo-t-sim7600")
    assert "PSRAM" in bi.pin_problem(t, 16, "vedirect rx")
    assert "modem rx" in bi.pin_problem(t, 26, "vedirect rx")
    assert "modem pwrkey" in bi.pin_problem(t, 4, "relay")
    assert "SD card" in bi.pin_problem(t, 13, "vedirect rx")
    assert bi.pin_problem(t, 27, "modem tx") is None
    a = _board("lilygo-t-a7670")
    assert "modem power" in bi.pin_problem(a, 12, "relay")
    assert "modem tx" in bi.pin_problem(a, 26, "vedirect tx")


def test_uart_problems():
    b = _board("esp32-devkit")
    assert "REPL" in bi.uart_problem(b, 0)
    assert bi.uart_problem(b, 1) is None and bi.uart_problem(b, 2) is None
    assert "does not exist" in bi.uart_problem(b, 3)
    assert "not a UART" in bi.uart_problem(b, "1")
    t = _board("lilygo-t-sim7600")
    assert "modem" in bi.uart_problem(t, 1)
    assert bi.uart_problem(t, 2) is None


def test_uart_plan_time_slicing():
    devs = [{"name": "d%d" % i, "rx": 18 + i} for i in range(4)]
    p = bi.uart_plan(_board("esp32-devkit"), devs)
    assert p["problems"] == [] and p["shared"] is True
    assert sorted(len(v) for v in p["uarts"].values()) == [2, 2]
    assert p["update_ms"]["d0"] == 4000
    p = bi.uart_plan(_board("esp32-devkit"), devs[:2])
    assert p["shared"] is False and p["update_ms"] == {"d0": 1000, "d1": 1000}
    t = _board("lilygo-t-sim7600")
    p = bi.uart_plan(t, [{"name": "a", "rx": 18, "tx": 19}, {"name": "b", "rx": 21, "tx": 5}, {"name": "c", "rx": 22}])
    assert p["uarts"] == {2: ["a", "b", "c"]}
    assert p["update_ms"]["c"] == 6000
    assert any("b: TX not connected" in n for n in p["notes"])
    assert any("every ~6 s" in n for n in p["notes"])
    p = bi.uart_plan(t, [{"name": "x", "rx": 18, "uart": 1}])
    assert p["problems"] and "modem" in p["problems"][0]
    p = bi.uart_plan(t, [{"name": "x", "rx": 18}], dwell_ms=1000)
    assert p["update_ms"]["x"] == 1000


def test_validate_catches_broken_boards():
    good = _board("esp32-devkit")
    b = _copy(good)
    b["vedirect"][0]["rx"] = 6
    assert any("reserved" in p for p in bi.validate(b))
    b = _copy(good)
    b["vedirect"][1]["tx"] = 17
    assert any("used twice" in p for p in bi.validate(b))
    b = _copy(good)
    del b["gpio"]
    assert bi.validate(b) == ["missing key 'gpio'"]
    b = _copy(good)
    b["mcu"] = "esp8266"
    assert "unknown mcu" in bi.validate(b)[0]
    b = _copy(good)
    b["uarts"] = [0, 1]
    assert any("uarts" in p for p in bi.validate(b))
    b = _copy(good)
    b["vedirect"][0]["uart"] = 0
    assert any("REPL" in p for p in bi.validate(b))
    b = _copy(good)
    b["gpio"]["reserved"]["5"] = ""
    assert any("reason" in p for p in bi.validate(b))
    assert bi.validate([]) == ["board is not a JSON object"]
    t = _copy(_board("lilygo-t-a7670"))
    t["modem"]["tx"] = 35
    assert any("input-only" in p for p in bi.validate(t))


def test_every_board_names_a_harmless_spare_tx():
    for name in BOARDS:
        b = _board(name)
        pin = b["vedirect_tx_spare"]
        assert bi.spare_tx_problem(b) is None, name
        # never a pin a UART picks by itself (UART1 tx=10 is flash, UART2 tx=17 is PSRAM on WROVER)
        assert pin not in (10, 17), name
        assert pin not in b["gpio"]["input_only"] and str(pin) not in b["gpio"]["reserved"]
        # a config cannot hand it to a device
        for role in ("vedirect rx", "vedirect tx"):
            why = bi.pin_problem(b, pin, role)
            assert why is not None and ("vedirect_tx_spare" in why or "GPS tx" in why), (name, why)
    b = _copy(_board("esp32-devkit"))
    b["vedirect_tx_spare"] = 17  # port 1's TX: a device with tx there would lose it
    assert any("vedirect_tx_spare" in p for p in bi.validate(b))
    b["vedirect_tx_spare"] = 35
    assert any("input-only" in p for p in bi.validate(b))
    del b["vedirect_tx_spare"]
    assert any("vedirect_tx_spare" in p for p in bi.validate(b))


def test_a7670_gps_pins_take_no_vegw_role():
    a = _board("lilygo-t-a7670")
    gps = (19, 21, 22, 23)
    assert sorted(a["gps"][r] for r in bi.GPS_ROLES) == list(gps)
    used = list(a["spare_rx"])
    for port in a["vedirect"]:
        used += [port["rx"], port["tx"]]
    if a["relay"]:
        used.append(a["relay"]["pin"])
    assert not [p for p in used if p in gps], used
    for pin in gps:
        assert bi.pin_problem(a, pin, "vedirect rx") is not None
    assert "GPS" in bi.pin_problem(a, 23, "vedirect rx")
    # the modem's reset/power pins as LilyGO wires them
    assert a["modem"]["reset"] == 5 and a["modem"]["power"] == 12


def test_module_led_and_psram_facts():
    t = _board("lilygo-t-sim7600")
    assert t["module"] == "ESP32-WROVER-E" and t["psram"] is True
    dip = [n for n in t["notes"] if "DIP" in n]
    assert dip and "P1 ON" in dip[0] and "P2 ON" in dip[0] and "P4 OFF" in dip[0]
    s3 = _board("esp32s3-devkit")
    assert s3["psram"] is True and s3["led"]["pin"] == 38
    assert "v1.0" in s3["gpio"]["onboard"]["48"] and "v1.1" in s3["gpio"]["onboard"]["38"]
    assert "wired to" in bi.pin_problem(s3, 48, "vedirect rx")  # kept free for a v1.0 board's LED
    n8 = _board("esp32s3-devkit-n8")
    assert n8["psram"] is False and bi.pin_problem(n8, 35, "vedirect rx") is None
    assert not bi.has_psram(n8) and bi.has_psram(s3) and not bi.has_psram(_board("esp32-devkit"))


def test_config_needing_psram_refused_without_it():
    import cfg_schema

    devs = [{"name": "b%d" % i, "type": "ble", "mac": "AA:BB:CC:DD:EE:%02X" % i,
             "key": "0123456789abcdef0123456789abcdef"} for i in range(bi.MAX_DEVICES_NO_PSRAM + 1)]
    cfg = {"gateway": {"id": "gw1"}, "wifi": [{"ssid": "x", "password": "long enough"}],
           "mqtt": {"host": "broker.example"}, "devices": devs}
    for name, ok in (("esp32-devkit", False), ("esp32s3-devkit-n8", False), ("esp32s3-devkit", True),
                     ("lilygo-t-a7670", True)):
        _, errors = cfg_schema.validate(cfg, _board(name))
        psram = [e for e in errors if "PSRAM" in e[1]]
        assert bool(psram) is not ok, (name, errors)
        if psram:
            assert psram[0][0] == "devices" and name in psram[0][1]
    cfg["devices"] = devs[:bi.MAX_DEVICES_NO_PSRAM]
    _, errors = cfg_schema.validate(cfg, _board("esp32-devkit"))
    assert not [e for e in errors if "PSRAM" in e[1]], errors
    assert bi.psram_problem(None, 16) is None  # no board: nothing to say


def test_load_never_raises():
    b, p = bi.load_board("no-such-board")
    assert b is None and "not found" in p[0]
    b, p = bi.load_board("../etc")
    assert b is None and "not valid" in p[0]
    path = "/tmp/vegw_test_bad_board.json"
    with open(path, "w") as f:
        f.write("{not json")
    b, p = bi.load(path)
    assert b is None and "JSON" in p[0]


def _parse_size(s):
    s = s.strip()
    if s.startswith("0x"):
        return int(s[2:], 16)
    if s.endswith("K"):
        return int(s[:-1]) * 1024
    if s.endswith("M"):
        return int(s[:-1]) * 1024 * 1024
    return int(s)


def test_partition_tables():
    for name in BOARDS:
        b = _board(name)
        rows = []
        with open("boards/%s/partitions.csv" % name) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                cols = [c.strip() for c in line.split(",")]
                rows.append((cols[0], cols[1], cols[2], _parse_size(cols[3]), _parse_size(cols[4])))
        labels = [r[0] for r in rows]
        for need in ("nvs", "phy_init", "factory", "vfs", "vegwlog"):
            assert need in labels, (name, need)
        end = 0
        for label, typ, sub, off, size in rows:
            assert off >= end, (name, label, "overlap")
            end = off + size
            if typ == "app":
                assert off % 0x10000 == 0, (name, label)
            assert off % 0x1000 == 0 and size % 0x1000 == 0, (name, label)
        assert end <= b["flash_mb"] * 1024 * 1024, name
        log = rows[labels.index("vegwlog")]
        assert log[1] == "data" and log[2] == "undefined" and log[4] >= 256 * 1024
        app = rows[labels.index("factory")]
        assert app[4] >= 0x1F0000  # MicroPython with BLE needs the stock app size


class _FakePin:
    OUT = 1
    IN = 0

    def __init__(self, n, mode=None, value=None):
        self.n = n
        self.v = value
        self.writes = [] if value is None else [value]

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        self.writes.append(v)


class _FakeMachine:
    Pin = _FakePin


def test_relay_driver_levels_and_host_twin():
    import sys

    saved = sys.modules.get("machine")
    sys.modules["machine"] = _FakeMachine
    try:
        from drivers import relay

        r = relay.Relay(23, active=1)
        assert r.pin.writes == [0]  # off level from the first instant
        r.set(True)
        r.set(True)
        r.set(False)
        assert r.pin.writes == [0, 1, 1, 0] and r.switches == 2 and r.get() is False
        lo = relay.Relay({"pin": 5, "active": 0})  # board.json form; a "low level trigger" relay board
        assert lo.pin.writes == [1]
        lo.set(True)
        assert lo.pin.v == 0
    finally:
        if saved is None:
            del sys.modules["machine"]
        else:
            sys.modules["machine"] = saved
        for k in ("drivers.relay", "relay"):
            if k in sys.modules:
                del sys.modules[k]
    from drivers import relay_host

    h = relay_host.Relay(23)
    for i in range(40):
        h.set(i % 2 == 0)
    assert h.switches == 40 and len(h.history) == 32 and h.get() is False
