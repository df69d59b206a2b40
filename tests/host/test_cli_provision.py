"""`vegw provision`, flag-driven and interactive, through the real CLI."""
import json
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
VEGW = str(ROOT / ".venv" / "bin" / "vegw")
KEY = "aff4d0995b7d1e176c0c33ecb9e70dcd"


def vegw(*args, stdin=None, cwd=None):
    return subprocess.run([VEGW, "provision"] + [str(a) for a in args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def validate(path):
    return subprocess.run([VEGW, "config", "validate", str(path)], capture_output=True, text=True, timeout=60)


def test_flags_produce_validated_config(tmp_path):
    out = tmp_path / "config.json"
    r = vegw("--gateway-id", "cabin-7", "--wifi", "cabin:secret:with:colons", "--wifi", "open:",
             "--broker", "mqtt.example.com", "--tls", "--ca", "ca.pem", "--mqtt-user", "cabin-7",
             "--mqtt-password", "s3cret!", "--apn", "internet", "--vedirect", "house:1:16:17",
             "--vedirect", "solar:2:25", "--ble", "shunt:aa:bb:cc:dd:ee:ff:" + KEY.upper(),
             "--rule", "low: alarm: house.V < 24 for 5m clear 24.4", "--out", out)
    assert r.returncode == 0, r.stderr
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    cfg = json.loads(out.read_text())
    assert cfg["gateway"]["id"] == "cabin-7"
    assert cfg["wifi"] == [{"ssid": "cabin", "password": "secret:with:colons"}, {"ssid": "open", "password": ""}]
    assert cfg["mqtt"]["host"] == "mqtt.example.com" and cfg["mqtt"]["tls"] is True and cfg["mqtt"]["ca"] == "ca.pem"
    assert cfg["modem"]["apn"] == "internet"
    assert cfg["devices"][1] == {"name": "solar", "type": "vedirect", "uart": 2, "rx": 25}
    assert cfg["devices"][2]["mac"] == "aa:bb:cc:dd:ee:ff" and cfg["devices"][2]["key"] == KEY.upper()
    assert "wrote" in r.stdout and "3 devices" in r.stdout
    v = validate(out)
    assert v.returncode == 0, v.stderr


def test_invalid_config_is_not_written_and_says_why(tmp_path):
    out = tmp_path / "config.json"
    r = vegw("--gateway-id", "Cabin 7", "--wifi", "cabin:short", "--broker", "broker.lan:1883", "--mqtt-user", "u",
             "--vedirect", "house:1:16:17", "--vedirect", "solar:2:16", "--ble", "shunt:AA:BB:CC:DD:EE:FF:" + KEY[:31],
             "--out", out)
    assert r.returncode == 2
    assert not out.exists() and not (tmp_path / "config.json.tmp").exists()
    err = r.stderr
    assert "gateway.id (--gateway-id): " in err
    assert "wifi[0].password (--wifi cabin): " in err
    assert "mqtt.password (--mqtt-password): required when mqtt.username is set" in err
    assert "devices[1].rx (--vedirect solar): GPIO 16 already used" in err
    assert "devices[2].key (--ble shunt): must be 32 hex characters, got 31" in err
    assert err.strip().splitlines()[-1] == "vegw provision: 5 errors; nothing written"
    assert "Traceback" not in err


def test_malformed_flags_one_line(tmp_path):
    for flag, val in (("--vedirect", "house:1"), ("--vedirect", "house:a:b"), ("--ble", "shunt"),
                      ("--wifi", "nopassword"), ("--broker", "host:port")):
        r = vegw("--gateway-id", "x", flag, val, "--out", tmp_path / "c.json")
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and flag in r.stderr, (flag, r.stderr)


def test_refuses_overwrite(tmp_path):
    out = tmp_path / "c.json"
    out.write_text("{}")
    r = vegw("--gateway-id", "x", "--broker", "127.0.0.1", "--out", out)
    assert r.returncode == 2 and "exists" in r.stderr and out.read_text() == "{}"
    r = vegw("--gateway-id", "x", "--broker", "127.0.0.1", "--out", out, "--force")
    assert r.returncode == 0 and json.loads(out.read_text())["gateway"]["id"] == "x"


def test_stdout_output(tmp_path):
    r = vegw("--gateway-id", "x", "--broker", "127.0.0.1:1884", "--out", "-")
    assert r.returncode == 0
    assert json.loads(r.stdout)["mqtt"] == {"host": "127.0.0.1", "port": 1884}


def test_interactive_reasks_bad_key_and_writes(tmp_path):
    out = tmp_path / "i.json"
    answers = "\n".join([
        "Bad Id", "site-9",  # first id refused, asked again
        "",  # board default
        "cabin", "short", "supersecret",  # wifi password too short, re-asked
        "",  # no more networks
        "n",  # no modem
        "broker.lan:1883", "n",  # broker, no TLS
        "",  # anonymous
        "y", "house", "1", "16", "17",  # one VE.Direct device
        "n",
        "y", "shunt", "AA:BB:CC:DD:EE", "AA:BB:CC:DD:EE:01", KEY[:31], KEY,  # bad MAC, bad key, re-asked
        "n",
    ]) + "\n"
    r = vegw("--out", out, stdin=answers)
    assert r.returncode == 0, r.stderr
    assert "must be 32 hex characters, got 31" in r.stderr
    cfg = json.loads(out.read_text())
    assert cfg["gateway"]["id"] == "site-9"
    assert cfg["wifi"] == [{"ssid": "cabin", "password": "supersecret"}]
    assert cfg["devices"][1] == {"name": "shunt", "type": "ble", "mac": "AA:BB:CC:DD:EE:01", "key": KEY}
    assert validate(out).returncode == 0


def test_interactive_eof_writes_nothing(tmp_path):
    out = tmp_path / "i.json"
    r = vegw("--out", out, stdin="site-9\n")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("vegw provision: input ended")
    assert not out.exists()


def test_emoji_ssid_written_as_utf8_and_read_back_by_micropython(tmp_path):
    # issue 23.10: \ud83d\ude00 escapes decode to the wrong bytes on MicroPython
    from vegw.runtime import micropython_cmd

    out = tmp_path / "config.json"
    ssid = "caf\u00e9 \U0001F600"
    r = vegw("--gateway-id", "cabin-7", "--wifi", ssid + ":correct horse", "--broker", "127.0.0.1",
             "--vedirect", "house:1:16:17", "--out", out)
    assert r.returncode == 0, r.stderr
    raw = out.read_bytes()
    assert b"\\u" not in raw and ssid.encode("utf-8") in raw
    prog = tmp_path / "read.py"
    prog.write_text("import json\nprint(json.load(open(%r))['wifi'][0]['ssid'].encode())\n" % str(out))
    mp = subprocess.run(micropython_cmd(prog), capture_output=True, text=True, timeout=60)
    assert mp.stdout.strip() == repr(ssid.encode("utf-8")), mp


def test_device_bytes_of_an_escaped_config_are_utf8():
    from vegw.cmd_config import device_config_bytes

    cfg = {"wifi": [{"ssid": "\U0001F600", "password": ""}]}
    escaped = json.dumps(cfg).encode()
    assert b"\\ud83d" in escaped
    fixed = device_config_bytes(escaped, cfg)
    assert b"\\u" not in fixed and json.loads(fixed) == cfg
    plain = json.dumps({"a": 1}).encode()
    assert device_config_bytes(plain, {"a": 1}) is plain


def test_number_too_long_for_json_is_one_line(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"mqtt": {"port": %s}}' % ("9" * 5000))
    r = validate(p)
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "unexpected" not in r.stderr
    assert len(r.stderr) < 400


def test_fleet_key_writes_this_gateways_own_ota_key(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "firmware" / "lib"))
    import ota_rx as ota

    out = tmp_path / "config.json"
    fleet = "ab" * 32
    r = vegw("--gateway-id", "cabin-7", "--broker", "127.0.0.1", "--vedirect", "house:1:16:17",
             "--fleet-key", fleet, "--out", out)
    assert r.returncode == 0, r.stderr
    cfg = json.loads(out.read_text())
    assert cfg["ota"]["key"] == ota.derive_key(bytes.fromhex(fleet), "cabin-7").hex()
    assert cfg["ota"]["key"] != ota.derive_key(bytes.fromhex(fleet), "cabin-8").hex()
    assert fleet not in out.read_text()  # the fleet key itself never goes on a board
    out2 = tmp_path / "nokey.json"
    r = vegw("--gateway-id", "cabin-8", "--broker", "127.0.0.1", "--vedirect", "house:1:16:17", "--out", out2)
    assert r.returncode == 0 and "refuse every update" in r.stderr
