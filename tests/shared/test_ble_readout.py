# BLE Instant Readout decoder: real captures, every record type round-trip
# through the encoder, sentinels, wrong key, garbage, truncation, dedupe.
# Runs under CPython and the MicroPython unix port.
import sys


import binascii

import aes_ecb
import ble_readout as br
import ble_tables
import ble_keys
try:  # CPython: the installed host tools
    from vegw import ble_encode as be
except ImportError:  # MicroPython: the runner starts in the repository root
    sys.path.append("host_tools/vegw")
    import ble_encode as be
import field_names
from _util import IS_MICROPYTHON, Rng, raises, skip


def h(s):
    return binascii.unhexlify(s.replace(" ", ""))


KEY_BM = h("aff4d0995b7d1e176c0c33ecb9e70dcd")
KEY = h("00112233445566778899aabbccddeeff")
OTHER_KEY = h("01112233445566778899aabbccddeeff")  # differs in the key-check byte


def close(a, b, eps=1e-6):
    if a is None or b is None:
        return a is b
    return abs(a - b) <= eps


def same_values(got, want):
    assert sorted(got.keys()) == sorted(want.keys()), (sorted(got.keys()), sorted(want.keys()))
    for k in want:
        assert close(got[k], want[k]), (k, got[k], want[k])


# --- AES ---------------------------------------------------------------------

def test_aes_ecb_fips197_vector():
    # FIPS-197 appendix C.1 (AES-128)
    a = aes_ecb.new(h("000102030405060708090a0b0c0d0e0f"))
    pt = h("00112233445566778899aabbccddeeff")
    assert a.encrypt(pt) == h("69c4e0d86a7b0430d8cdb78070b4c55a")
    out = bytearray(16)
    a.encrypt(pt, out)
    assert bytes(out) == h("69c4e0d86a7b0430d8cdb78070b4c55a")
    assert raises(ValueError, aes_ecb.new, bytes(15))


# --- real captures (vectors named in ../shared/reference/ble.md) ---------------

def test_worked_example_smartshunt():
    adv = h("10 02 89a3 02 b040 af 925d09a4d89aa0128bdef48c6298a9")
    d = br.Decoder()
    assert d.decode(adv, KEY_BM) == br.OK
    assert bytes(d.plain[:d.payload_len]) == h("ffffe50400000000030000f40140df")
    assert d.record == "battery_monitor" and d.model_id == 0xA389 and d.counter == 0x40B0
    same_values(d.values(), {"TTG": None, "V": 12.53, "AR": 0, "I": 0.0, "CE": -50.0, "SOC": 50.0})


def test_company_id_prefix_is_optional():
    adv = h("100289a302b040af925d09a4d89aa0128bdef48c6298a9")
    a = ble_tables.decode(adv, KEY_BM)
    b = ble_tables.decode(b"\xe1\x02" + adv, KEY_BM)
    assert a[0] == b[0] == br.OK
    same_values(a[2], b[2])
    assert br.parse_mfr(b"\xe1\x02" + adv) == (0xA389, 0x02, 0x40B0, 0xAF, 10, 15)
    assert br.parse_mfr(adv) == (0xA389, 0x02, 0x40B0, 0xAF, 8, 15)


REAL = (
    # (advert, key, record, values) from victron-ble's tests (real devices)
    ("100242a0016207adceb37b605d7e0ee21b24df5c", "adeccb947395801a4dd45a2eaa44bf17", "solar_charger",
     {"CS": 4, "ERR": 0, "V": 13.88, "I": 1.4, "H20": 0.03, "PPV": 19, "IL": 0.0}),
    ("1080b0a3093523fadedea38b1af8bcbde91ca8b6dbb60e", "fac570d66380b797a5b7543758be00e4", "smart_battery_protect",
     {"CS": 249, "output_state": 1, "ERR": 0, "AR": 0, "WARN": 0, "DC_IN_V": 13.07, "V": 13.07, "OR": 0}),
    # Smart Battery Sense: current raw 0x1FFFFF (not the PDF's 0x3FFFFF) is NA
    ("1000a4a3025f150d8dcbff517f30eb65e76b22a04ac4e1", "0da694539597f9cf6c613cde60d7bf05", "battery_monitor",
     {"TTG": None, "V": 12.22, "AR": 0, "T": 22.5, "I": None, "CE": None, "SOC": None}),
    # Orion Smart while off: output voltage 0x7FFF is NA (null, not 0 V)
    ("1000c0a304121d64ca8d442b90bbdf6a8cba", "64ba49f1a8562e45197a8e1fe50d7658", "dcdc_converter",
     {"CS": 0, "ERR": 0, "DC_IN_V": 13.15, "V": None, "OR": 128}),
    ("100380270c1252dad26f0b8eb39162074d140df410", "da3f5fa2860cb1cf86ba7a6d1d16b9dd", "vebus",
     {"CS": 5, "vebus_error": 0, "I": 23.2, "V": 14.45, "ac_in_active": 0, "ac_in_power": 1459,
      "ac_out_power": 1046, "alarm_state": 0, "T": 32, "SOC": None}),
    ("100380270ce1b2dabd34912a6ecec963899227a220", "da3f5fa2860cb1cf86ba7a6d1d16b9dd", "vebus",
     {"CS": 9, "vebus_error": 0, "I": -5.9, "V": 12.43, "ac_in_active": 2, "ac_in_power": 0,
      "ac_out_power": 45, "alarm_state": 0, "T": 30, "SOC": None}),
)


def test_real_captures():
    for adv, key, rec, want in REAL:
        st, name, values = ble_tables.decode(h(adv), h(key))
        assert st == br.OK, (adv, st)
        assert name == rec
        same_values(values, want)


def test_real_capture_wrong_key_is_status_not_garbage():
    adv = h("100289a302b040af925d09a4d89aa0128bdef48c6298a9")
    st, name, values = ble_tables.decode(adv, KEY)
    assert st == br.WRONG_KEY and values is None
    d = br.Decoder()
    assert d.decode(adv, None) == br.WRONG_KEY
    assert d.decode(adv, b"") == br.WRONG_KEY  # a broken key is a status, never an exception
    assert d.decode(adv, KEY_BM[:15]) == br.WRONG_KEY


# --- every record type round-trip through the encoder --------------------------

ROUND_TRIP = (
    ("test", {"uptime": 123456, "T": -12}),
    ("solar_charger", {"CS": 3, "ERR": 0, "V": 13.02, "I": -1.5, "H20": 1.23, "PPV": 250, "IL": 12.3}),
    ("battery_monitor", {"TTG": 600, "V": 25.61, "AR": 0x0081, "VS": -1.25, "I": -3.141, "CE": -12.5, "SOC": 87.4}),
    ("battery_monitor", {"TTG": 0, "V": 12.0, "AR": 0, "VM": 6.02, "I": 2000.0, "CE": 0.0, "SOC": 100.0}),
    ("battery_monitor", {"TTG": None, "V": 12.9, "AR": 0, "T": 25.35, "I": -0.002, "CE": -104857.4, "SOC": 0.0}),
    ("inverter", {"CS": 9, "AR": 256, "V": 24.5, "AC_OUT_S": 830, "AC_OUT_V": 230.12, "AC_OUT_I": 3.6}),
    ("dcdc_converter", {"CS": 3, "ERR": 0, "DC_IN_V": 14.2, "V": 13.6, "OR": 0x81}),
    ("smart_lithium", {"bms_flags": 0x06000000, "error_flags": 0, "cell_1": 3.32, "cell_2": 3.33, "cell_3": 2.6,
                       "cell_4": 3.85, "cell_5": None, "cell_6": None, "cell_7": None, "cell_8": None,
                       "V": 13.3, "balancer_status": 1, "T": 21}),
    ("inverter_rs", {"CS": 9, "ERR": 0, "V": 51.2, "I": -20.5, "PPV": 3000, "H20": 12.34, "ac_out_power": -150}),
    ("gx_device", {"V": 52.1, "PPV": 450000, "SOC": 77, "P": -1234, "dc_power": 321}),
    ("ac_charger", {"CS": 4, "ERR": 0, "V": 14.4, "I": 12.5, "V2": 13.1, "I2": 0.0, "V3": None, "I3": None,
                    "T": 35, "ac_current": 1.2}),
    ("smart_battery_protect", {"CS": 249, "output_state": 1, "ERR": 0, "AR": 0, "WARN": 2, "DC_IN_V": -0.5,
                               "V": 12.8, "OR": 4}),
    ("lynx_smart_bms", {"bms_error": 0, "TTG": 1440, "V": 26.4, "I": -45.2, "io_status": 0x0054,
                        "warnings_alarms": 0x15555, "SOC": 95.5, "CE": -10.0, "T": 18}),
    ("multi_rs", {"CS": 10, "ERR": 0, "I": -12.0, "V": 51.5, "ac_in_active": 1, "ac_in_power": 2300,
                  "ac_out_power": -400, "PPV": 4200, "H20": 20.5}),
    ("vebus", {"CS": 10, "vebus_error": 0, "I": -60.3, "V": 48.2, "ac_in_active": 0, "ac_in_power": -5000,
               "ac_out_power": 131071, "alarm_state": 1, "T": 31, "SOC": 86}),
    ("dc_energy_meter", {"MON": -3, "V": 13.9, "AR": 0, "VS": 12.7, "I": -2097.152}),
    ("dc_energy_meter", {"MON": 7, "V": 24.0, "AR": 64, "T": -5.0, "I": 1.5}),
    ("orion_xs", {"CS": 3, "ERR": 0, "V": 13.9, "I": 30.2, "DC_IN_V": 12.8, "DC_IN_I": 33.3, "OR": 0}),
    ("solarsense", {"error_code": 0, "ERR": 0, "installation_power": 512, "H20": 2.5, "irradiance": 845.6,
                    "cell_temperature": 41.3, "sensor_battery_voltage": 3.3, "tx_power": 6, "time_since_sun": 0}),
)


def test_every_record_type_round_trips():
    seen = []
    n = 0
    for rec, values in ROUND_TRIP:
        n += 1
        adv = be.encode(rec, values, KEY, 1000 + n)
        st, name, got = ble_tables.decode(adv, KEY)
        assert st == br.OK, (rec, st)
        assert name == rec
        same_values(got, values)
        if rec not in seen:
            seen.append(rec)
    assert len(seen) == len(ble_tables.record_types()) == 16


def test_round_trip_with_company_id_and_model():
    adv = be.encode("solar_charger", {"V": 12.5}, KEY, 7, model_id=0xA053, company=True)
    assert adv[:3] == b"\xe1\x02\x10"
    d = br.Decoder()
    assert d.decode(adv, KEY) == br.OK
    assert d.model_id == 0xA053 and d.counter == 7 and d.record_type == 1


def test_solarsense_is_unencrypted_and_tiers():
    adv = be.encode("solarsense", {"time_since_sun": 58, "irradiance": 0.0}, KEY, 3)
    assert adv[4] == 0xFF and adv[7] == 0x01
    for key in (KEY, None, OTHER_KEY):  # no key check, no decryption
        st, name, got = ble_tables.decode(adv, key)
        assert st == br.OK and name == "solarsense"
        assert got["time_since_sun"] == 58 and got["irradiance"] == 0.0
    for minutes in (0, 2, 58, 60, 70, 710, 720, 750, 1620):
        got = ble_tables.decode(be.encode("solarsense", {"time_since_sun": minutes}, KEY, 3), None)[2]
        assert got["time_since_sun"] == minutes, (minutes, got["time_since_sun"])


# --- "not available" judged on the raw field -----------------------------------

def test_battery_current_na_both_sentinels_and_signed_range():
    # 0x3FFFFF (PDF) is also -1 mA in two's complement: NA wins, as the PDF says
    for raw, want in ((0x3FFFFF, None), (0x1FFFFF, None), (-1, None), (-2, -0.002), (-0x200000, -2097.152),
                      (0x1FFFFE, 2097.150), (0, 0.0)):
        adv = be.encode_raw("battery_monitor", {"I": raw}, KEY, 1)
        got = ble_tables.decode(adv, KEY)[2]
        assert close(got["I"], want), (raw, got["I"])


def test_aux_temperature_ffff_is_no_sensor_not_382c():
    adv = be.encode_raw("battery_monitor", {"aux": 0xFFFF, "aux_input": 2}, KEY, 1)
    got = ble_tables.decode(adv, KEY)[2]
    assert "T" in got and got["T"] is None
    adv = be.encode_raw("battery_monitor", {"aux": 29815, "aux_input": 2}, KEY, 1)
    assert close(ble_tables.decode(adv, KEY)[2]["T"], 25.0)


def test_aux_input_selects_field():
    for sel, raw, name, want in ((0, 0x7FFF, "VS", None), (0, 0xFF83, "VS", -1.25), (1, 0xFFFF, "VM", None),
                                 (1, 1250, "VM", 12.5), (3, 0, None, None)):
        got = ble_tables.decode(be.encode_raw("battery_monitor", {"aux": raw, "aux_input": sel}, KEY, 1), KEY)[2]
        for other in ("VS", "VM", "T"):
            if other != name:
                assert other not in got, (sel, got)
        if name:
            assert close(got[name], want), (sel, got)
    # DC energy meter: aux input 1 (midpoint) is not valid there
    got = ble_tables.decode(be.encode_raw("dc_energy_meter", {"aux": 1250, "aux_input": 1}, KEY, 1), KEY)[2]
    assert "VM" not in got and "VS" not in got and "T" not in got


def test_sentinels_become_none_for_every_field():
    # every field at its NA raw value -> None (fields without NA -> 0 / code)
    for rt, sub, rec in ble_tables.record_types():
        fields = ble_tables.record_spec(rt, sub)[1]
        raws = {}
        for f in fields:
            if f[6] != br.NO_NA:
                raws[f[0]] = f[6]
        got = ble_tables.decode(be.encode_raw(rec, raws, KEY, 9), KEY)[2]
        for f in fields:
            if f[6] != br.NO_NA and f[0] in got:
                assert got[f[0]] is None, (rec, f[0], got[f[0]])


def test_lynx_consumed_is_negative_and_soc_na_is_10_bit():
    got = ble_tables.decode(be.encode_raw("lynx_smart_bms", {"CE": 125, "SOC": 0x3FF}, KEY, 1), KEY)[2]
    assert close(got["CE"], -12.5)
    assert got["SOC"] is None


def test_signed_fields_two_complement():
    adv = be.encode_raw("vebus", {"ac_in_power": -0x40000, "ac_out_power": 0x3FFFE, "I": -0x8000}, KEY, 1)
    got = ble_tables.decode(adv, KEY)[2]
    assert got["ac_in_power"] == -262144 and got["ac_out_power"] == 262142
    assert close(got["I"], -3276.8)
    got = ble_tables.decode(be.encode_raw("dc_energy_meter", {"MON": -9}, KEY, 1), KEY)[2]
    assert got["MON"] == -9


# --- malformed input --------------------------------------------------------------

def test_truncated_payload_fields_that_do_not_fit_are_none():
    full = be.encode("solar_charger", {"CS": 3, "ERR": 0, "V": 13.02, "I": 1.5, "H20": 1.23, "PPV": 250, "IL": 1.0}, KEY, 5)
    adv = full[:8 + 7]  # 7 payload bytes: CS ERR V I fit (48 bits), H20 needs 8
    st, name, got = ble_tables.decode(adv, KEY)
    assert st == br.OK
    assert got["CS"] == 3 and close(got["V"], 13.02) and close(got["I"], 1.5)
    assert got["H20"] is None and got["PPV"] is None and got["IL"] is None


def test_truncated_and_oversized_adverts_are_malformed():
    full = be.encode("battery_monitor", {"V": 12.0}, KEY, 5)
    for cut in (1, 2, 5, 8):  # header only or shorter
        assert ble_tables.decode(full[:cut], KEY)[0] == br.MALFORMED, cut
    assert ble_tables.decode(b"", KEY)[0] == br.MALFORMED
    assert ble_tables.decode(b"\xe1\x02", KEY)[0] == br.MALFORMED
    long_adv = be.encode("battery_monitor", {"V": 12.0}, KEY, 5, payload_len=16) + b"\x00"
    assert ble_tables.decode(long_adv, KEY)[0] == br.MALFORMED
    assert br.parse_mfr(long_adv) is None
    ok16 = be.encode("battery_monitor", {"V": 12.0}, KEY, 5, payload_len=16)  # extended record: fine
    assert ble_tables.decode(ok16, KEY)[0] == br.OK


def test_not_readout_and_unknown_records():
    adv = bytearray(be.encode("battery_monitor", {"V": 12.0}, KEY, 5))
    adv[0] = 0x11
    assert ble_tables.decode(bytes(adv), KEY)[0] == br.NOT_READOUT
    for rt in (0x0E, 0x10, 0x42, 0xFE):
        adv = bytearray(be.encode("battery_monitor", {"V": 12.0}, KEY, 5))
        adv[4] = rt
        assert ble_tables.decode(bytes(adv), KEY)[0] == br.UNKNOWN_RECORD, rt
    adv = bytearray(be.encode("solarsense", {}, KEY, 5))
    adv[7] = 0x00  # 0xFF/0x00 unencrypted test record: no known layout
    assert ble_tables.decode(bytes(adv), KEY)[0] == br.UNKNOWN_RECORD


def test_garbage_never_raises():
    rng = Rng(20260929)
    d = br.Decoder()
    seen = {}
    for i in range(1500):
        n = rng.below(30)
        data = bytearray(rng.bytes(n))
        if n > 0 and rng.below(3):
            data[0] = 0x10  # mostly well-formed headers so the decoder goes deep
        if n > 7 and rng.below(2):
            data[7] = KEY[0]
        st = d.decode(bytes(data), KEY)
        assert st in br.STATUSES, st
        if st == br.OK:
            vals = d.values()
            for k in vals:
                assert field_names.info(k) is not None, k
        seen[st] = 1
    assert br.OK in seen and br.MALFORMED in seen and br.UNKNOWN_RECORD in seen and br.WRONG_KEY in seen


# --- enums --------------------------------------------------------------------------

def test_unknown_and_combined_codes_never_raise():
    # codes that crash victron-ble: passthru 8, assisting 10, alarm 0x0003, off 0x0C, err 19, SBP out 2
    assert ble_tables.code_name("CS", 8) == "passthru"
    assert ble_tables.code_name("CS", 10) == "assisting"
    assert ble_tables.code_name("CS", 123) == "unknown"
    assert ble_tables.code_name("ERR", 19) == "charger_current_reversed"
    assert ble_tables.code_name("AR", 3) == ["low_voltage", "high_voltage"]
    assert ble_tables.code_name("OR", 0x0C) == ["switched_off_register", "remote_input"]
    assert ble_tables.code_name("output_state", 2) == "unknown"
    assert ble_tables.code_name("vebus_error", 99) == "unknown"
    assert ble_tables.code_name("MON", -3) == "dc_dc_charger"
    assert ble_tables.code_name("bms_flags", 0x06000000) == ["allowed_to_charge", "allowed_to_discharge"]
    assert ble_tables.code_name("V", 12) is None and ble_tables.code_name("CS", None) is None
    got = ble_tables.decode(be.encode("vebus", {"CS": 10, "vebus_error": 250}, KEY, 3), KEY)[2]
    assert got["CS"] == 10 and got["vebus_error"] == 250


def test_every_output_name_is_registered():
    for rec, values in ROUND_TRIP:
        for k in ble_tables.decode(be.encode(rec, values, KEY, 1), KEY)[2]:
            info = field_names.info(k)
            assert info is not None, k
    assert field_names.info("ac_in_power")[1] == "W"
    assert field_names.info("cell_3")[1] == "V"


# --- config checks --------------------------------------------------------------

def test_key_problem():
    assert ble_keys.key_problem("aff4d0995b7d1e176c0c33ecb9e70dcd") is None
    assert ble_keys.key_problem("AFF4D0995B7D1E176C0C33ECB9E70DCD ") is None
    assert ble_keys.key_problem("aff4d0995b7d1e176c0c33ecb9e70dc") == "ble key must be 32 hex characters, got 31"
    assert ble_keys.key_problem("") == "ble key must be 32 hex characters, got 0"
    assert "position 3" in ble_keys.key_problem("afg4d0995b7d1e176c0c33ecb9e70dcd")
    assert ble_keys.key_problem(None) is not None
    assert ble_keys.key_bytes("aff4d0995b7d1e176c0c33ecb9e70dcd") == KEY_BM


def test_mac_problem():
    assert ble_keys.mac_problem("AA:BB:CC:DD:EE:FF") is None
    assert ble_keys.mac_problem("aa-bb-cc-dd-ee-0f") is None
    for bad in ("AA:BB:CC:DD:EE", "AA:BB:CC:DD:EE:GG", "AABBCCDDEEFF", "AA:BB-CC:DD:EE:FF", 42, None):
        assert ble_keys.mac_problem(bad) is not None, bad
    assert ble_keys.mac_bytes("aa:bb:cc:dd:ee:0f") == h("aabbccddee0f")
    assert br.mac_text(h("aabbccddee0f")) == "AA:BB:CC:DD:EE:0F"


# --- Tracker: keys per MAC, dedupe, wrong-key notice ---------------------------------

MAC1 = h("c0ffee000001")
MAC2 = h("c0ffee000002")


def _tracker():
    t = br.Tracker()
    assert t.add("C0:FF:EE:00:00:01", "00112233445566778899aabbccddeeff") is None
    assert t.add(MAC2, OTHER_KEY) is None
    return t


def test_tracker_drops_repeated_counter_wrap_safe():
    t = _tracker()
    seq = (0xFFFE, 0xFFFE, 0xFFFF, 0xFFFF, 0x0000, 0x0000, 0x0001)
    got = []
    for c in seq:
        got.append(t.feed(MAC1, be.encode("solar_charger", {"V": 13.0 + c % 7 / 100}, KEY, c)))
    assert got == ["ok", "repeat", "ok", "repeat", "ok", "repeat", "ok"], got
    assert t.device(MAC1).updates == 4 and t.device(MAC1).repeats == 3
    assert t.counts["ok"] == 4 and t.counts["repeat"] == 3


def test_tracker_values_after_ok():
    t = _tracker()
    mv = memoryview(bytearray(MAC1))  # what the scanner hands over
    assert t.feed(mv, be.encode("solar_charger", {"V": 13.5, "PPV": 99}, KEY, 1)) == "ok"
    v = t.values()
    assert close(v["V"], 13.5) and v["PPV"] == 99
    assert t.decoder.record == "solar_charger"


def test_tracker_refuses_replays_then_follows_a_rebooted_device():
    t = _tracker()
    assert t.feed(MAC1, be.encode("solar_charger", {}, KEY, 100)) == "ok"
    assert t.feed(MAC1, be.encode("solar_charger", {}, KEY, 100)) == "repeat"
    assert t.feed(MAC1, be.encode("solar_charger", {}, KEY, 90)) == "replay"  # behind
    # issue 23.9: far behind was taken as new data (the old window was 60)
    assert t.feed(MAC1, be.encode("solar_charger", {}, KEY, 100 - 5000)) == "replay"
    assert t.feed(MAC1, be.encode("solar_charger", {}, KEY, 101)) == "ok"
    assert t.feed(MAC1, be.encode("solar_charger", {}, KEY, 101 + 16384)) == "ok"  # ahead within the window
    # the same old advert replayed again and again never gets through
    old = be.encode("solar_charger", {}, KEY, 50)
    assert [t.feed(MAC1, old) for _ in range(10)] == ["replay"] * 10
    # a rebooted device restarts low and climbs: followed after 5 in a row
    got = [t.feed(MAC1, be.encode("solar_charger", {}, KEY, c)) for c in (3, 4, 5, 6, 7, 8)]
    assert got == ["replay"] * 4 + ["ok", "ok"], got
    assert t.device(MAC1).replays == 1 + 1 + 10 + 4
    assert t.counts["replay"] == 16


def test_tracker_implausible_values_mean_a_wrong_key():
    # a key whose first byte matches but whose rest is wrong decodes to
    # garbage: Instant Readout has no MAC, range limits are what is left
    t = _tracker()
    wrong = bytes((KEY[0],)) + bytes(15)
    t.add(MAC1, wrong)
    notices = []
    got = []
    for c in range(1, 40):
        adv = be.encode("solar_charger", {"CS": 3, "V": 13.2, "PPV": 100}, KEY, c)
        st = t.feed(MAC1, adv)
        if st == "ok":
            got.append(t.values())
            if t.notice:
                notices.append(t.notice)
    assert t.counts["implausible"] >= 30, t.counts  # garbage CS/V/PPV almost always out of range
    assert got.count(None) == t.counts["implausible"]
    assert len(notices) == 1 and "out of range" in notices[0] and "C0:FF:EE:00:00:01" in notices[0]
    # the right key again: values come back, the notice is re-armed
    t.add(MAC1, KEY)
    assert t.feed(MAC1, be.encode("solar_charger", {"CS": 3, "V": 13.2}, KEY, 100)) == "ok"
    v = t.values()
    assert v["CS"] == 3 and v["V"] == 13.2


def test_tracker_wrong_key_reported_once_per_device():
    t = _tracker()
    bad = be.encode("battery_monitor", {"V": 12.0}, KEY, 5)  # MAC2 has OTHER_KEY
    assert t.feed(MAC2, bad) == "wrong_key"
    assert t.notice.startswith("key does not match device C0:FF:EE:00:00:02")
    for c in range(6, 20):
        assert t.feed(MAC2, be.encode("battery_monitor", {"V": 12.0}, KEY, c)) == "wrong_key"
        assert t.notice is None
    assert t.device(MAC2).wrong_key == 15
    assert t.feed(MAC1, bad) == "ok" and t.notice is None  # other device unaffected
    # the key matching again re-arms the notice
    assert t.feed(MAC2, be.encode("battery_monitor", {"V": 12.0}, OTHER_KEY, 30)) == "ok"
    assert t.feed(MAC2, be.encode("battery_monitor", {"V": 12.0}, KEY, 31)) == "wrong_key"
    assert t.notice is not None


def test_tracker_unknown_device_and_limits():
    t = _tracker()
    assert t.feed(h("000000000001"), be.encode("battery_monitor", {}, KEY, 5)) == "unknown_device"
    assert t.add("C0:FF:EE:00:00:0X", KEY) is not None
    assert t.add(MAC1, "00112233") == "ble key must be 32 hex characters, got 8"
    for i in range(30):
        t.add(bytes([1, 2, 3, 4, 5, i]), KEY)
    assert t.refused == 30 - (16 - 2)


def test_decode_allocates_nothing_on_micropython():
    if not IS_MICROPYTHON:
        skip("heap_lock is MicroPython only")
    import micropython

    t = _tracker()
    advs = [be.encode("battery_monitor", {"V": 12.0 + i / 100, "I": -1.5, "SOC": 50.0}, KEY, i) for i in range(1, 6)]
    d = br.Decoder()
    key = bytes(KEY)
    aes = aes_ecb.new(key)
    sts = [None] * 10
    micropython.heap_lock()
    try:
        for i in range(5):
            sts[i] = d.decode(advs[i], key, aes)
        for i in range(5):  # the tracker path, repeats included
            sts[5 + i] = t.feed(MAC1, advs[i // 2])
    finally:
        micropython.heap_unlock()
    assert sts == ["ok"] * 5 + ["ok", "repeat", "ok", "repeat", "ok"], sts
    assert abs(t.values()["V"] - 12.03) < 1e-6  # the dict is built after feed (it allocates)
