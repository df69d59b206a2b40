"""`vegw ble-decode`: JSON contract, company id optional, errors exit 2 with one line."""
import json
import subprocess
import sys

from vegw import cli
from vegw import ble_encode as be

KEY_HEX = "aff4d0995b7d1e176c0c33ecb9e70dcd"
ADV = "100289a302b040af925d09a4d89aa0128bdef48c6298a9"  # vbl-bm-smartshunt-1


def run(capsys, *argv):
    rc = cli.main(["ble-decode"] + list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_decodes_worked_example(capsys):
    rc, out, err = run(capsys, "--key", KEY_HEX, ADV)
    assert rc == 0 and err == ""
    obj = json.loads(out)
    assert obj["record"] == "battery_monitor"
    assert obj["model_id"] == 0xA389
    assert obj["counter"] == 0x40B0
    assert obj["model"] in (None,) or "SmartShunt" in obj["model"]
    assert obj["values"] == {"TTG": None, "V": 12.53, "AR": 0, "I": 0.0, "CE": -50.0, "SOC": 50.0}
    assert out.count("\n") == 1


def test_company_id_prefix_and_separators_accepted(capsys):
    rc1, out1, _ = run(capsys, "--key", KEY_HEX, "e102" + ADV)
    spaced = " ".join(ADV[i:i + 2] for i in range(0, len(ADV), 2))
    rc2, out2, _ = run(capsys, "--key", KEY_HEX.upper(), spaced)
    assert rc1 == rc2 == 0
    assert json.loads(out1) == json.loads(out2)


def test_enum_names_and_nulls(capsys):
    key = bytes.fromhex("00112233445566778899aabbccddeeff")
    adv = be.encode("vebus", {"CS": 10, "vebus_error": 0, "V": 48.0, "alarm_state": 2}, key, 77).hex()
    rc, out, _ = run(capsys, "--key", key.hex(), adv)
    obj = json.loads(out)
    assert rc == 0 and obj["record"] == "vebus"
    assert obj["values"]["CS"] == 10 and obj["names"]["CS"] == "assisting"
    assert obj["names"]["alarm_state"] == "alarm"
    assert obj["values"]["SOC"] is None and obj["values"]["I"] is None


def test_solarsense_needs_no_key(capsys):
    adv = be.encode("solarsense", {"irradiance": 512.5, "time_since_sun": 0}, b"\0" * 16, 3).hex()
    rc, out, err = run(capsys, adv)
    assert rc == 0, err
    obj = json.loads(out)
    assert obj["record"] == "solarsense" and obj["values"]["irradiance"] == 512.5


def test_31_char_key_refused_with_exact_message(capsys):
    rc, out, err = run(capsys, "--key", KEY_HEX[:31], ADV)
    assert rc == 2 and out == ""
    assert err == "ble key must be 32 hex characters, got 31\n"


def test_errors_exit_2_one_line(capsys):
    cases = (
        (["--key", "00" + KEY_HEX[2:], ADV], "key does not match"),
        (["--key", KEY_HEX, ADV[:14]], "malformed advert"),
        (["--key", KEY_HEX, ADV + "00" * 8], "malformed advert"),
        (["--key", KEY_HEX, "11" + ADV[2:]], "not an instant-readout advert"),
        (["--key", KEY_HEX, ADV[:8] + "0e" + ADV[10:]], "unknown record type 0x0e"),
        (["--key", KEY_HEX, ADV + "0"], "odd number"),
        (["--key", KEY_HEX, "zz" + ADV], "not hex"),
        ([ADV], "--key is required"),
        (["--key", "g" * 32, ADV], "position 1"),
    )
    for argv, text in cases:
        rc, out, err = run(capsys, *argv)
        assert rc == 2, (argv, rc)
        assert out == ""
        assert text in err, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err


def test_console_script_no_traceback():
    p = subprocess.run([sys.executable, "-m", "vegw.cli", "ble-decode", "--key", "abc", ADV],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip() == "ble key must be 32 hex characters, got 3"
