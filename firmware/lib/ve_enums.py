# Victron enumerations shared by the VE.Direct decoder and the BLE decoder,
# so a value read over either path gets the same name.
# Sources: VE.Direct Protocol 3.29 (CS, ERR, OR, AR, MPPT, MODE), BlueSolar HEX
# protocol rev 10 (state 249, 255), Victron MPPT error-code list; MON from
# peer decoders (see ../shared/reference/vedirect.md s.4).
#
# Each table is ONE string ",code=name,code=name,...,": a single object (in
# flash when frozen), no tuples or dicts built at import; a lookup is one
# str.find. Unknown codes never raise: they map to "unknown" and the caller
# publishes the raw code beside the name.

UNKNOWN = "unknown"

# CS / VE_REG_DEVICE_STATE
DEVICE_STATE = (
    ","
    "0=off,1=low_power,2=fault,3=bulk,4=absorption,5=float,6=storage,7=equalize_manual,"
    "8=passthru,9=inverting,10=assisting,11=power_supply,244=sustain,245=starting_up,"
    "246=repeated_absorption,247=auto_equalize,248=battery_safe,249=load_detect,250=blocked,"
    "251=test,252=external_control,255=not_available,"
)

# ERR / VE_REG_CHR_ERROR_CODE
CHARGER_ERROR = (
    ","
    "0=no_error,1=battery_temperature_high,2=battery_voltage_high,"
    "3=remote_temperature_sensor_failure,4=remote_temperature_sensor_failure,"
    "5=remote_temperature_sensor_failure,6=remote_voltage_sense_failure,"
    "7=remote_voltage_sense_failure,8=remote_voltage_sense_failure,11=battery_high_ripple,"
    "14=battery_temperature_low,17=charger_temperature_high,18=charger_over_current,"
    "19=charger_current_reversed,20=bulk_time_limit_exceeded,21=current_sensor_issue,"
    "22=internal_temperature_sensor_failure,23=internal_temperature_sensor_failure,"
    "24=fan_failure,26=terminals_overheated,27=charger_short_circuit,28=converter_issue,"
    "29=over_charge_protection,33=input_voltage_too_high,34=input_current_too_high,"
    "35=input_power_too_high,38=input_shutdown_battery_voltage,39=input_shutdown_current_flow,"
    "40=input_shutdown_failure,41=inverter_shutdown_pv_isolation,"
    "42=inverter_shutdown_pv_isolation,43=inverter_shutdown_ground_fault,50=inverter_overload,"
    "51=inverter_temperature_high,52=inverter_peak_current,53=inverter_output_voltage,"
    "54=inverter_output_voltage,55=inverter_self_test_failed,56=inverter_self_test_failed,"
    "57=inverter_ac_voltage_on_output,58=inverter_self_test_failed,65=communication_lost,"
    "66=incompatible_device,67=bms_connection_lost,68=network_misconfigured,"
    "69=network_misconfigured,70=network_misconfigured,71=network_misconfigured,"
    "80=pv_input_shutdown,81=pv_input_shutdown,82=pv_input_shutdown,83=pv_input_shutdown,"
    "84=pv_input_shutdown,85=pv_input_shutdown,86=pv_input_shutdown,87=pv_input_shutdown,"
    "114=cpu_temperature_high,116=calibration_data_lost,117=incompatible_firmware,"
    "119=settings_invalid,121=tester_fail,200=internal_dc_voltage_error,"
    "201=internal_dc_voltage_error,202=pv_residual_current_sensor_failure,"
    "203=internal_supply_voltage_error,205=internal_supply_voltage_error,"
    "212=internal_supply_voltage_error,215=internal_supply_voltage_error,255=not_available,"
)

# OR / VE_REG_DEVICE_OFF_REASON_2: bit number = name
OFF_REASON_BITS = (
    ","
    "0=no_input_power,1=switched_off_switch,2=switched_off_register,3=remote_input,"
    "4=protection_active,5=paygo,6=bms,7=engine_shutdown,8=analysing_input_voltage,"
    "9=battery_temperature,"
)

# AR / WARN / VE_REG_ALARM_REASON: bit number = name
ALARM_REASON_BITS = (
    ","
    "0=low_voltage,1=high_voltage,2=low_soc,3=low_starter_voltage,4=high_starter_voltage,"
    "5=low_temperature,6=high_temperature,7=mid_voltage,8=overload,9=dc_ripple,10=low_v_ac_out,"
    "11=high_v_ac_out,12=short_circuit,13=bms_lockout,"
)

# MPPT tracker mode
TRACKER_MODE = (
    ","
    "0=off,1=limited,2=mppt_active,"
)

# MODE (device mode)
DEVICE_MODE = (
    ","
    "0=off,1=charger,2=inverter,3=on,4=off,5=eco,253=hibernate,"
)

# MON (DC monitor mode, signed): negative = source, positive = load
MONITOR_MODE = (
    ","
    "-9=solar_charger,-8=wind_turbine,-7=shaft_generator,-6=alternator,-5=fuel_cell,"
    "-4=water_generator,-3=dc_dc_charger,-2=ac_charger,-1=generic_source,0=battery_monitor,"
    "1=generic_load,2=electric_drive,3=fridge,4=water_pump,5=bilge_pump,6=dc_system,7=inverter,"
    "8=water_heater,"
)


# BLE-only tables (Instant Readout records; no VE.Direct text label).
# VE.Bus error: Venus OS /VebusError codes (assumed identical for BLE).
VEBUS_ERROR = (
    ","
    "0=none,1=phase_switched_off,2=mk2_mixed,3=devices_missing,4=no_other_device,"
    "5=ac_out_overvoltage,6=ddc_program_error,7=vebus_bms_without_assistant,"
    "8=ground_relay_test_failed,10=time_sync_problem,11=relay_test_fault,14=cannot_transmit,"
    "16=awaiting_configuration,17=phase_master_missing,18=slave_ac_overvoltage,"
    "22=cannot_be_slave,24=switch_over_protection,25=firmware_incompatible,26=internal_error,"
    "255=not_available,"
)
# Smart BatteryProtect output state: only 0 and 1 are seen on real devices;
# victron-ble adds 4 = off. Other codes publish as "unknown".
OUTPUT_STATE = ",0=off,1=on,4=off,"
AC_IN_ACTIVE = ",0=ac_in_1,1=ac_in_2,2=not_connected,"
ALARM_STATE = ",0=none,1=warning,2=alarm,"
BALANCER_STATUS = ",0=unknown,1=balanced,2=balancing,3=imbalance,"
# SmartLithium BMS flags (bit number=name); from VE.Can register notes, uncertain.
BMS_FLAG_BITS = (
    ","
    "0=charged,1=almost_charged,2=discharged,3=almost_discharged,4=charging,5=discharging,"
    "6=balancing,7=safety_contactor,9=overvoltage_alarm,10=overvoltage_warning,"
    "11=undervoltage_alarm,12=undervoltage_warning,13=overcurrent_charge_warning,"
    "14=overcurrent_discharge_warning,15=overtemperature_alarm,16=overtemperature_warning,"
    "17=undertemperature_charge_warning,18=undertemperature_charge_alarm,"
    "19=undertemperature_discharge_warning,20=undertemperature_discharge_alarm,"
    "22=undertemperature_alarm,24=hardware_failure,25=allowed_to_charge,26=allowed_to_discharge,"
)


def name(table, code):
    """Name of `code` in a table, or "unknown" (None for None)."""
    if code is None:
        return None
    if type(table) is tuple:  # (code, name, ...) tables of other modules
        for i in range(0, len(table), 2):
            if table[i] == code:
                return table[i + 1]
        return UNKNOWN
    key = ",%d=" % code
    i = table.find(key)
    if i < 0:
        return UNKNOWN
    i += len(key)
    return table[i:table.find(",", i)]


def bit_names(table, mask):
    """Names of the set bits of `mask`; an unnamed bit gives "bitN"."""
    if mask is None:
        return None
    out = []
    bit = 0
    while mask:
        if mask & 1:
            label = name(table, bit)
            out.append(label if label != UNKNOWN else "bit%d" % bit)
        mask >>= 1
        bit += 1
    return out
