import ve_enums as E


def test_state_names_and_unknown():
    assert E.name(E.DEVICE_STATE, 3) == "bulk"
    assert E.name(E.DEVICE_STATE, 10) == "assisting"
    assert E.name(E.DEVICE_STATE, 77) == "unknown"
    assert E.name(E.DEVICE_STATE, None) is None


def test_error_codes_follow_the_protocol_document():
    # [P1] numbering; a peer shifted 66..68 and used 118 for 119.
    assert E.name(E.CHARGER_ERROR, 67) == "bms_connection_lost"
    assert E.name(E.CHARGER_ERROR, 68) == "network_misconfigured"
    assert E.name(E.CHARGER_ERROR, 119) == "settings_invalid"
    assert E.name(E.CHARGER_ERROR, 118) == "unknown"


def test_bit_names_combined_and_unnamed_bits():
    assert E.bit_names(E.ALARM_REASON_BITS, 0) == []
    assert E.bit_names(E.ALARM_REASON_BITS, 3) == ["low_voltage", "high_voltage"]
    assert E.bit_names(E.OFF_REASON_BITS, 0x9) == ["no_input_power", "remote_input"]
    assert E.bit_names(E.ALARM_REASON_BITS, 1 << 15) == ["bit15"]


def test_signed_monitor_mode():
    assert E.name(E.MONITOR_MODE, -3) == "dc_dc_charger"
    assert E.name(E.MONITOR_MODE, 0) == "battery_monitor"
