# The RAM diet (docs/ram.md): tables written as constants must agree with
# their readable sources, and the names of the on-demand halves live there
# only (callers import them; the resident halves do not forward them).
# Runs under CPython and the MicroPython unix port.
import sys

import ble_readout as br
import field_names
import records
import records_dec


def test_ble_layout_constants_match_the_readable_table():
    import ble_tables

    recs, solarsense = ble_tables.parse_table()
    assert len(recs) == 16
    for i in range(16):
        assert recs[i] == br._packed(i), i
        assert br._packed(i) is br._packed(i)  # unpacked once, then cached
    assert solarsense == br._packed(0xFF, 0x01)
    assert br._packed(0xFF, 0x02) is None and br._packed(0x0E) is None and br._packed(0x40) is None
    if sys.implementation.name != "micropython":  # a host tool (builds ~4 KB of text)
        # the generator reproduces the constants
        ns = {}
        exec(ble_tables.gen_records(), ns)
        assert ns["_REC_TEXT"] == br._REC_TEXT and ns["_REC_LAYOUT"] == br._REC_LAYOUT
    # a broken table is refused, not silently packed
    bad = "01 x\n V 0 16 s 100 0 1234\n"
    try:
        ble_tables.parse_table(bad)
        raised = False
    except ValueError:
        raised = True
    assert raised


def test_ble_rare_names_live_in_their_own_modules():
    import ble_keys
    import ble_tables

    assert ble_tables.code_name("CS", 3) == "bulk"
    assert ble_tables.code_name("vebus_error", 1) == "phase_switched_off"
    assert ble_tables.code_name("bms_flags", 1 | 16) == ["charged", "charging"]
    name, fields = ble_tables.record_spec(0x02)
    assert name == "battery_monitor" and fields[0][0] == "TTG"
    assert (0xFF, 0x01, "solarsense") in ble_tables.record_types()
    assert ble_tables.OUTPUT_STATE.startswith(",0=off,")
    st, rec, vals = ble_tables.decode(b"\x10", bytes(16))
    assert st == br.MALFORMED and rec is None and vals is None
    assert ble_keys.mac_bytes("aa:bb:cc:dd:ee:ff") == bytes((0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF))
    # the resident decoder does not forward them (no module __getattr__)
    for n in ("code_name", "record_spec", "decode", "OUTPUT_STATE", "mac_bytes", "no_such_name"):
        assert not hasattr(br, n), n


def test_ble_fields_known_without_registration():
    # in the registry's table itself: no tuple per field built at import
    for name, unit in (("cell_1", "V"), ("irradiance", "W/m²"), ("uptime", "s"), ("vebus_error", "")):
        inf = field_names.info(name)
        assert inf is not None and inf[0] == name and inf[1] == unit, name
    import field_aliases

    assert field_aliases.resolve("ac_out_power") == "ac_out_power"
    names = [f[0] for f in field_aliases.fields()]
    assert len(names) == len(set(names))


def test_records_decoder_side_lives_in_records_dec():
    enc = records.MinuteEncoder([("d", ["V", "CS"])], key_every=60, per_record=1)
    out = enc.add(1700000000, [[(1250, 1260, 1270), 3]])
    assert len(out) == 1 and out[0][0] == records.T_KEY
    dec = records_dec.MinuteDecoder()
    minutes = dec.decode(out[0][0], out[0][1])
    assert minutes[0]["devices"]["d"] == {"V": [12.5, 12.6, 12.7], "CS": 3}
    assert records_dec.from_scaled(1234, 2) == 12.34
    assert records_dec.decode_values(records_dec.encode_values(["V"], [12.5], 7)) == (7, {"V": 12.5})
    codes = records_dec.codes()
    assert codes[:3] == ("V", "V2", "V3") and len(codes) == len(set(codes))
    for i in range(len(codes)):
        assert records.code_of(codes[i]) == i and records.code_name(i) == codes[i]
    assert records.code_name(len(codes)) is None and records.code_name(-1) is None
    assert records.code_of("V=20|V2") == -1 and records.code_of(None) == -1
    assert records.res("V=20|V2") == (2, records.KIND_ANALOG)
    assert records.res("CS") == (0, records.KIND_STATE) and records.res("SOC") == (1, records.KIND_LAST)
    assert records.res("LOAD") == (0, records.KIND_BOOL) and records.res("cell_temperature") == (1, records.KIND_ANALOG)
    # the encoder side does not forward the decoder's names (no module __getattr__)
    for n in ("MinuteDecoder", "decode_values", "replay", "CODES", "nothing_here"):
        assert not hasattr(records, n), n


def _block(labels):
    import vedirect

    body = b""
    for lab in labels:
        # a value of the label's form (the parser checks it): ON/OFF labels
        body += b"\r\n" + lab + (b"\tON" if lab in (b"LOAD", b"Alarm", b"Relay") else b"\t1")
    body += b"\r\nChecksum\t"
    out = []
    vedirect.Parser(out.append).feed(body + bytes(((256 - sum(body)) & 0xFF,)) + b"\r\n")
    assert len(out) == 1, "one verified block"
    return out[0]


def test_vedirect_labels_resolve_in_place():
    import vedirect_fields as VF

    labels = tuple(n.encode() for n in VF.NAMES)
    assert labels[0] == b"V" and labels[-1] == b"HC#" and len(labels) == len(VF.NAMES)
    for first in range(0, len(labels), 20):
        b = _block(labels[first:first + 20])
        assert [b.entry(i) for i in range(b.count)] == list(range(first, min(first + 20, len(labels))))
    # unknown labels sharing a first byte and length with known ones
    b = _block((b"H99", b"V4", b"CX", b"SER$"))
    assert [b.entry(i) for i in range(4)] == [-1, -1, -1, -1]


def test_vedirect_text_names_and_product_name():
    import gateway
    import vedirect_text as VF

    assert gateway.product_name(0xA053) == "SmartSolar MPPT 75/15"
    if sys.implementation.name == "micropython":
        sys.modules.pop("vedirect_text", None)
        gateway.product_name(0xA053)
        assert "vedirect_text" not in sys.modules  # dropped after the call
    assert VF.product_name(41859) == "BMV-712 Smart Rev2"
    assert VF.product_name(None) is None and VF.product_name(1) is None
    assert VF.text("CS", 3) == "bulk"
    assert VF.text("AR", 1 | 2) == "low_voltage,high_voltage"
    assert VF.enum_table("MPPT") is not None and VF.bits_table("OR") is not None
    assert VF.text("V", 1) is None


def test_builtin_event_names_without_resident_enums():
    import alarm_engine

    sys.modules.pop("ve_enums", None)
    eng = alarm_engine.Engine([], devices=["m"])
    eng.update("m", {"ERR": 17, "AR": 1 | 2}, 100)
    names = [str(ev) for ev in eng.events()]
    assert any("charger_temperature_high" in n for n in names), names
    assert any("low_voltage" in n and "high_voltage" in n for n in names), names
    if sys.implementation.name == "micropython":
        assert "ve_enums" not in sys.modules  # loaded for the names, dropped again


def test_aliases_and_listings_live_in_field_aliases():
    import field_aliases

    assert field_aliases.resolve("soc") == "SOC" and field_aliases.resolve("serial") == "SER#"
    assert field_aliases.resolve("V") == "V" and field_aliases.resolve("nope") is None
    assert field_aliases.resolve("soc_avg_7d") == "soc_avg_7d"  # a row of field_names' table
    names = field_aliases.all_names()
    assert "pv_power" in names and "cell_1" in names and "soc_avg_7d" in names
    assert ("V", "V", "voltage", "m") in field_aliases.fields()
    assert "voltage=V" in field_aliases._ALIASES
    for n in ("resolve", "fields", "all_names", "_ALIASES"):
        assert not hasattr(field_names, n), n


def test_reporter_can_keep_the_callers_dict():
    import reporter

    r = reporter.Reporter(heartbeat_s=3600, copy=False)
    v = {"V": 12.0}
    assert r.check("d", v, 0) == "first"
    assert r.last("d") is v  # no second copy of the device's values
    assert r.check("d", {"V": 12.01}, 1000) is None
    assert r.check("d", {"V": 12.2}, 2000) == "change"
    assert r.last("d") == {"V": 12.2} and r.last("x") is None
    c = reporter.Reporter(heartbeat_s=3600)  # default: a copy, safe for reused dicts
    w = {"V": 12.0}
    c.check("d", w, 0)
    assert c.last("d") == w and c.last("d") is not w


def test_minute_encoder_reuses_its_state_across_key_frames():
    enc = records.MinuteEncoder([("d", ["V", "CS", "SOC"])], key_every=3, per_record=1)
    dec = records_dec.MinuteDecoder()
    seen = []
    st = None
    for m in range(10):
        row = [(1200 + m, 1210 + 2 * m, 1230 + m), m % 4, 800 + 3 * m]
        for rtype, payload in enc.add(1700000000 + 60 * m, [row]):
            if rtype == records.T_KEY:
                if st is None:
                    st = enc._stobj
                assert enc._stobj is st  # reset in place, not allocated again
            for minute in dec.decode(rtype, payload):
                seen.append(minute["devices"]["d"])
    assert enc.keys == 4 and len(seen) == 10
    for m in range(10):
        v = seen[m]
        assert v["V"] == [(1200 + m) / 100, (1210 + 2 * m) / 100, (1230 + m) / 100], (m, v)
        assert v["CS"] == m % 4 and v["SOC"] == (800 + 3 * m) / 10
