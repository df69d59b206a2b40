"""`vegw config new|validate` through the real CLI in subprocesses."""
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
VEGW = str(ROOT / ".venv" / "bin" / "vegw")


def vegw(*args, cwd=None, stdin=None):
    return subprocess.run([VEGW] + [str(a) for a in args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60)


def starter(tmp_path):
    p = tmp_path / "c.json"
    r = vegw("config", "new", p)
    assert r.returncode == 0, r.stderr
    return p, json.loads(p.read_text())


def test_new_writes_valid_annotated_config(tmp_path):
    p, cfg = starter(tmp_path)
    assert "_comment" in cfg and "_comment" in cfg["mqtt"]
    assert any(d["type"] == "ble" and len(d["key"]) == 32 for d in cfg["devices"])
    assert oct(os.stat(p).st_mode & 0o777) == "0o600"  # holds secrets
    r = vegw("config", "validate", p)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1 and "valid" in r.stdout and "site-001" in r.stdout
    assert "placeholder" in r.stderr  # reminds to replace CHANGE-ME values
    r = vegw("config", "validate", p, "--strict")
    assert r.returncode == 2


def test_new_refuses_overwrite_and_prints_to_stdout(tmp_path):
    p, _ = starter(tmp_path)
    r = vegw("config", "new", p)
    assert r.returncode == 2 and "exists" in r.stderr and r.stderr.count("\n") == 1
    r = vegw("config", "new")
    assert r.returncode == 0 and json.loads(r.stdout)["gateway"]["id"] == "site-001"


def test_every_error_one_per_line_with_path(tmp_path):
    _, cfg = starter(tmp_path)
    cfg["devices"][1]["key"] = cfg["devices"][1]["key"][:31]
    cfg["devices"].append({"name": "house", "type": "ble", "mac": "AA:BB:CC:DD:EE", "key": "0" * 32})
    cfg["mqtt"]["port"] = "8883"
    cfg["mqtt"]["user"] = "x"
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(cfg))
    r = vegw("config", "validate", p)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith(("warning:", "note:"))]
    assert "devices[1].key: must be 32 hex characters, got 31" in lines
    assert any(ln.startswith("devices[2].name: ") for ln in lines)
    assert any(ln.startswith("devices[2].mac: ") for ln in lines)
    assert any(ln.startswith("mqtt.port: must be an integer") for ln in lines)
    assert any(ln.startswith("mqtt.user: ") and "username" in ln for ln in lines)
    assert lines[-1] == "%s: 5 errors" % p
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_invalid_json_reports_line_and_column(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{\n  "gateway": {"id": "x",}\n}\n')
    r = vegw("config", "validate", p)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1
    assert "%s:2:" % p in r.stderr and "not valid JSON" in r.stderr
    p.write_bytes(b"\xff\xfe\x00garbage")
    r = vegw("config", "validate", p)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = vegw("config", "validate", tmp_path / "missing.json")
    assert r.returncode == 2 and "cannot read" in r.stderr
    p.write_text("[" * 100000)
    r = vegw("config", "validate", p)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_board_pins_checked_when_board_exists(tmp_path):
    boards = sorted((ROOT / "boards").glob("*/board.json"))
    if not boards:
        import pytest

        pytest.skip("no board files yet")
    name = boards[0].parent.name
    _, cfg = starter(tmp_path)
    cfg["devices"][0]["rx"] = 6  # a flash pin on every ESP32 module
    cfg["devices"][0]["tx"] = None
    p = tmp_path / "pins.json"
    p.write_text(json.dumps(cfg))
    r = vegw("config", "validate", p, "--board", name)
    assert r.returncode == 2 and "devices[0].rx: " in r.stderr, r.stderr


def test_show_masks_secrets(tmp_path):
    p, _ = starter(tmp_path)
    r = vegw("config", "validate", p, "--show")
    assert r.returncode == 0
    shown = json.loads(r.stdout[: r.stdout.rindex("}") + 1])
    assert shown["mqtt"]["password"] == "***" and shown["devices"][1]["key"] == "***"
    assert "CHANGE-ME-mqtt-password" not in r.stdout


def test_not_an_object(tmp_path):
    p = tmp_path / "list.json"
    p.write_text("[1, 2]")
    r = vegw("config", "validate", p)
    assert r.returncode == 2 and r.stderr.startswith("(top): ")


def test_config_needing_psram_refused_for_a_board_without(tmp_path):
    devs = [{"name": "b%d" % i, "type": "ble", "mac": "AA:BB:CC:DD:EE:%02X" % i,
             "key": "%032x" % (0x1234567 + i)} for i in range(9)]
    cfg = {"gateway": {"id": "gw", "board": "esp32-devkit"}, "wifi": [{"ssid": "x", "password": "long enough"}],
           "mqtt": {"host": "b.example"}, "devices": devs}
    p = tmp_path / "nine.json"
    p.write_text(json.dumps(cfg))
    r = vegw("config", "validate", p)
    assert r.returncode == 2 and "devices: 9 devices need a board with PSRAM; esp32-devkit has none" in r.stderr
    for board, rc in (("esp32s3-devkit-n8", 2), ("esp32s3-devkit", 0), ("lilygo-t-a7670", 0)):
        assert vegw("config", "validate", p, "--board", board).returncode == rc, board


def test_unknown_board_is_an_error_listing_the_known_ones(tmp_path):
    p, cfg = starter(tmp_path)
    r = vegw("config", "validate", p, "--board", "esp32-s3-devkit")
    assert r.returncode == 2, r.stderr
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("--board:")]
    assert line and "esp32-s3-devkit" in line[0] and "esp32s3-devkit" in line[0] and "esp32-devkit" in line[0]
    assert "pin checks skipped" not in r.stderr
    # the same typo in the config itself
    cfg["gateway"]["board"] = "esp32-s3-devkit"
    p.write_text(json.dumps(cfg))
    r = vegw("config", "validate", p)
    assert r.returncode == 2 and any(ln.startswith("gateway.board: unknown board") for ln in r.stderr.splitlines())
    assert vegw("config", "validate", p, "--board", "esp32s3-devkit").returncode == 0
