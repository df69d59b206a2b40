# Decoder: every label of the protocol to its SI value (VE.Direct 3.29 Table I).
import vedirect
import vedirect_fields as F
import vedirect_text as T
from _util import read_fixture


def decode_fields(pairs):
    body = b""
    for lab, val in pairs:
        body += b"\r\n" + lab + b"\t" + val
    body += b"\r\nChecksum\t"
    blk = body + bytes(((256 - sum(body)) & 0xFF,))
    out = []
    p = vedirect.Parser(lambda b: out.append(T.decode(b)))
    p.feed(blk)
    assert len(out) == 1
    return out[0]


# (label, sent, expected SI value)
CASES = (
    (b"V", b"12530", 12.53), (b"V2", b"13001", 13.001), (b"V3", b"-5", -0.005),
    (b"VS", b"-14", -0.014), (b"VM", b"6405", 6.405), (b"DM", b"-12", -1.2),
    (b"VPV", b"36020", 36.02), (b"PPV", b"412", 412),
    (b"I", b"-3250", -3.25), (b"I2", b"100", 0.1), (b"I3", b"0", 0.0), (b"IL", b"1500", 1.5),
    (b"LOAD", b"ON", True), (b"T", b"-5", -5), (b"T", b"---", None), (b"P", b"-86", -86),
    (b"CE", b"-50000", -50.0), (b"CE", b"---", None), (b"SOC", b"876", 87.6), (b"SOC", b"---", None),
    (b"TTG", b"-1", None), (b"TTG", b"1515", 1515), (b"TTG", b"---", None),
    (b"Alarm", b"OFF", False), (b"Alarm", b"On", True), (b"Relay", b"Off", False),
    (b"AR", b"5", 5), (b"OR", b"0x00000009", 9), (b"WARN", b"256", 256),
    (b"H1", b"-102345", -102.345), (b"H2", b"-50123", -50.123), (b"H3", b"-40000", -40.0),
    (b"H4", b"97", 97), (b"H5", b"0", 0), (b"H6", b"-2316635", -2316.635), (b"H7", b"10765", 10.765),
    (b"H8", b"14688", 14.688), (b"H9", b"86400", 86400), (b"H10", b"12", 12), (b"H11", b"1", 1),
    (b"H12", b"2", 2), (b"H13", b"3", 3), (b"H14", b"4", 4), (b"H15", b"-22", -0.022),
    (b"H16", b"15240", 15.24), (b"H17", b"15032", 150.32), (b"H18", b"16433", 164.33),
    (b"H19", b"12345", 123.45), (b"H20", b"187", 1.87), (b"H21", b"412", 412), (b"H22", b"5", 0.05),
    (b"H23", b"398", 398), (b"ERR", b"17", 17), (b"CS", b"3", 3), (b"BMV", b"712 Smart", "712 Smart"),
    (b"FW", b"0415", "0415"), (b"FWE", b"0115FF", "0115FF"), (b"PID", b"0x203", 0x203),
    (b"PID", b"0xA389", 0xA389), (b"SER#", b"HQ2231ABCDE", "HQ2231ABCDE"), (b"HSDS", b"274", 274),
    (b"MODE", b"2", 2), (b"AC_OUT_V", b"23000", 230.0), (b"AC_OUT_I", b"43", 4.3),
    (b"AC_OUT_S", b"1000", 1000), (b"MPPT", b"2", 2), (b"MON", b"-3", -3),
    (b"DC_IN_V", b"1262", 12.62), (b"DC_IN_I", b"220", 22.0), (b"DC_IN_P", b"277", 277),
    (b"CAP_BLE", b"3", 3), (b"HC#", b"57825", "57825"), (b"NEWLABEL", b"x y", "x y"),
)


def test_every_label_scales_to_si():
    for lab, sent, want in CASES:
        got = decode_fields([(lab, sent)])
        key = lab.decode()
        assert key in got, key
        v = got[key]
        if isinstance(want, float):
            assert isinstance(v, float) and abs(v - want) < 1e-9, (key, v, want)
        else:
            assert v == want and type(v) == type(want), (key, v, want)


def test_every_documented_label_is_in_the_table():
    labels = ("V V2 V3 VS VM DM VPV PPV I I2 I3 IL LOAD T P CE SOC TTG Alarm Relay AR OR "
              "H1 H2 H3 H4 H5 H6 H7 H8 H9 H10 H11 H12 H13 H14 H15 H16 H17 H18 H19 H20 H21 H22 H23 "
              "ERR CS BMV FW FWE PID SER# HSDS MODE AC_OUT_V AC_OUT_I AC_OUT_S WARN MPPT MON "
              "DC_IN_V DC_IN_I DC_IN_P").split()
    for lab in labels:
        assert lab in F.NAMES, lab


def test_enum_and_bit_names():
    assert T.text("CS", 3) == "bulk"
    assert T.text("CS", 9) == "inverting"
    assert T.text("ERR", 17) == "charger_temperature_high"
    assert T.text("OR", 9) == "no_input_power,remote_input"
    assert T.text("AR", 4) == "low_soc"
    assert T.text("MPPT", 2) == "mppt_active"
    assert T.text("MODE", 2) == "inverter"
    assert T.text("MON", -9) == "solar_charger"
    assert T.text("CS", 200) == "unknown"
    assert T.text("V", 12) is None


def test_product_names():
    assert T.product_name(0x203) == "BMV-700"
    assert T.product_name(0xA381) == "BMV-712 Smart"
    assert T.product_name(0xA389) == "SmartShunt 500A/50mV"
    assert T.product_name(0xA042) == "BlueSolar MPPT 75/15"
    assert T.product_name(0xA053) == "SmartSolar MPPT 75/15"
    assert T.product_name(0xA060) == "SmartSolar MPPT 100/20 48V"
    assert T.product_name(0xA06E) == "SmartSolar MPPT 150/100 rev3"
    assert T.product_name(0xA071) == "BlueSolar MPPT 150/70 rev2"
    assert T.product_name(0xA10E) == "SmartSolar MPPT VE.Can 150/100 rev2"
    assert T.product_name(0xA116) == "SmartSolar MPPT VE.Can 250/85 rev2"
    assert T.product_name(0xA231) == "Phoenix Inverter 12V 250VA 230V"
    assert T.product_name(0xA23C) == "Phoenix Inverter 48V 250VA 120V"
    assert T.product_name(0xA2A4) == "Phoenix Inverter 48V 3000VA 230V"
    assert T.product_name(0xA2F1) == "Phoenix Inverter Smart 12V 1200VA 230V"
    assert T.product_name(0xA344) == "Phoenix Smart IP43 Charger 12/30 (1+1)"
    assert T.product_name(0xA3F0) == "Orion XS 12V/12V-50A"
    assert T.product_name(0xFFFF) is None


def test_update_merges_split_blocks_and_reports_changes():
    raw = {}
    data = read_fixture("gen_mppt.bin")  # split A/B blocks (newer MPPT firmware)
    changes = []
    p = vedirect.Parser(lambda b: changes.append(F.update(b, raw)))
    p.feed(data)
    for lab in ("PID", "SER#", "V", "PPV", "CS", "ERR", "LOAD", "IL", "H20", "HSDS"):
        assert lab in raw, lab
    assert raw["SER#"] == b"HQ2231ABCDE"
    assert changes[0] == 10 and changes[1] == 9
    # the same block again changes nothing
    before = dict(raw)
    assert changes[-1] <= 9 and before == raw


def test_update_keeps_scaled_integers():
    raw = {}
    p = vedirect.Parser(lambda b: F.update(b, raw))
    p.feed(read_fixture("faq_bmv700.bin"))
    assert raw["V"] == 26201 and raw["SOC"] == 1000 and raw["TTG"] == -1
    assert F.to_si("V", raw["V"]) == 26.201
    assert F.to_si("TTG", raw["TTG"]) is None
    assert F.to_si("BMV", raw["BMV"]) == "700"


# -- issue 23: consumers of a good block: bound, count, never drop the rest --


def _blk(fields):
    body = b"".join(b"\r\n" + k + b"\t" + v for k, v in fields) + b"\r\nChecksum\t"
    return body + bytes(((256 - sum(body)) & 0xFF,))


def test_unknown_labels_are_bounded_per_device_and_counted():
    raw = {}
    stats = {}
    p = vedirect.Parser(lambda b: F.update(b, raw, stats))
    for n in range(300):
        p.feed(_blk([(b"V", b"%d" % (12000 + n)), (b"U%d" % n, b"x"), (b"SOC", b"900")]))
    assert p.blocks_ok == 300 and p.callback_errors == 0
    assert len(raw) == 48  # _MAX_KEYS
    assert stats["labels_dropped"] == 300 - 46
    assert raw["V"] == 12299 and raw["SOC"] == 900  # the rest of each block kept
    # unknown labels already kept keep updating
    p.feed(_blk([(b"U0", b"y")]))
    assert raw["U0"] == b"y" and stats["labels_dropped"] == 254


def test_label_with_high_bytes_keeps_the_block():
    raw = {}
    p = vedirect.Parser(lambda b: F.update(b, raw))
    p.feed(_blk([(b"PID", b"0x203"), (b"\xc3\xa9\xff", b"1"), (b"V", b"26201")]))
    assert p.callback_errors == 0 and p.blocks_ok == 1
    assert raw["V"] == 26201 and raw["PID"] == 0x203
    assert raw["\\xc3\\xa9\\xff"] == b"1"
    for k in raw:
        F.to_si(k, raw[k])  # never raises


def test_numbers_are_bounded_never_overflow():
    assert F.to_si("V", 10 ** 300) is None
    assert F.to_si("V", -(10 ** 300)) is None
    assert F.to_si("V", 12800) == 12.8
    assert F._parse_int(b"9" * 300, 0, 300) is None
    assert F._parse_int(b"-2147483648", 0, 11) == -2147483648
    assert F._parse_hex(b"0x" + b"F" * 40, 0, 42) is None
