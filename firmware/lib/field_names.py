# Registry of every field a decoder or metric can produce: one vocabulary for
# VE.Direct, BLE, alarm rules, MQTT payloads and Home Assistant discovery.
#
# _TABLE is ONE string "|name:unit:device_class:state_class|...": a single
# object (in flash when frozen) instead of ~70 tuples built at import, which
# matters on a ~110 KB heap. unit "" = dimensionless/text, device_class "" =
# none, state_class "" = none, "m" measurement, "t" total, "ti"
# total_increasing. Lookups happen at config load and discovery, never per byte.
#
# The aliases (resolve()) and the full listings are in field_aliases.py, which
# imports this module: config and rule checks use them, the running gateway
# only info().
#
# State classes follow Home Assistant's sensor docs
# (developers.home-assistant.io/blog/2021/08/16/state_class_total and
# /2021/09/20/state_class_total): a counter that restarts from 0 (H19, H20 and
# the *_today values at midnight) is "total_increasing", because HA "interprets
# a decreasing value as the start of a new meter cycle"; a value of a closed
# period (H22, H23 and the *_yesterday values) is "a historic value ... the
# amount of energy used last month" (blog/2021/05/25/sensor_attributes), for
# which HA prescribes no state class (it is neither a present measurement
# nor a growing total, and energy may not be a "measurement").

_TABLE = (
    "|"
    "V:V:voltage:m|V2:V:voltage:m|V3:V:voltage:m|VS:V:voltage:m|VM:V:voltage:m|DM:%::m|"
    "VPV:V:voltage:m|PPV:W:power:m|I:A:current:m|I2:A:current:m|I3:A:current:m|"
    "IL:A:current:m|LOAD:::|T:°C:temperature:m|P:W:power:m|CE:Ah::m|SOC:%:battery:m|"
    "TTG:min:duration:m|Alarm:::|Relay:::|AR:::|OR:::|WARN:::|H1:Ah::m|H2:Ah::m|H3:Ah::m|"
    "H4:::ti|H5:::ti|H6:Ah::m|H7:V:voltage:m|H8:V:voltage:m|H9:s:duration:m|H10:::ti|"
    "H11:::ti|H12:::ti|H13:::ti|H14:::ti|H15:V:voltage:m|H16:V:voltage:m|H17:kWh:energy:ti|"
    "H18:kWh:energy:ti|H19:kWh:energy:ti|H20:kWh:energy:ti|H21:W:power:m|H22:kWh:energy:|"
    "H23:W:power:|ERR:::|CS:::|BMV:::|FW:::|FWE:::|PID:::|SER#:::|HSDS:::|MODE:::|"
    "AC_OUT_V:V:voltage:m|AC_OUT_I:A:current:m|AC_OUT_S:VA:apparent_power:m|MPPT:::|MON:::|"
    "DC_IN_V:V:voltage:m|DC_IN_I:A:current:m|DC_IN_P:W:power:m|CAP_BLE:::|HC#:::|"
    # BLE-only fields (ble_readout's records): here rather than registered
    # at import, so no tuple per field is built on the heap
    "uptime:s:duration:m|ac_out_power:W:power:m|ac_in_power:W:power:m|ac_in_active:::|"
    "dc_power:W:power:m|ac_current:A:current:m|bms_flags:::|error_flags:::|"
    "cell_1:V:voltage:m|cell_2:V:voltage:m|cell_3:V:voltage:m|cell_4:V:voltage:m|"
    "cell_5:V:voltage:m|cell_6:V:voltage:m|cell_7:V:voltage:m|cell_8:V:voltage:m|"
    "balancer_status:::|output_state:::|bms_error:::|io_status:::|warnings_alarms:::|"
    "vebus_error:::|alarm_state:::|error_code:::|installation_power:W:power:m|"
    "irradiance:W/m²:irradiance:m|cell_temperature:°C:temperature:m|"
    "sensor_battery_voltage:V:voltage:m|tx_power:dBm:signal_strength:m|"
    "time_since_sun:min:duration:m|rssi:dBm:signal_strength:m|"
    # derived metrics (metrics.py: battery_fields(), solar_fields())
    "full_cycles:::ti|soc_avg_1d:%:battery:m|soc_avg_7d:%:battery:m|"
    "soc_avg_30d:%:battery:m|soc_avg_90d:%:battery:m|ah_in_today:Ah::ti|"
    "ah_out_today:Ah::ti|ah_in_yesterday:Ah::|ah_out_yesterday:Ah::|"
    "kwh_in_today:kWh:energy:ti|kwh_out_today:kWh:energy:ti|"
    "kwh_in_yesterday:kWh:energy:|kwh_out_yesterday:kWh:energy:|"
    "since_full:s:duration:m|mid_dev:%::m|mid_dev_abs:%::m|capacity_est:Ah::m|"
    "capacity_conf:%::m|soh:%::m|pv_kwh_today:kWh:energy:ti|"
    "pv_kwh_yesterday:kWh:energy:|load_power:W:power:m|load_kwh_today:kWh:energy:ti|"
    "load_kwh_yesterday:kWh:energy:|charge_power:W:power:m|"
    "charge_kwh_today:kWh:energy:ti|"
)

_EXTRA = []  # type: list  # fields registered at import by other modules (BLE-only, metrics)


def register(name, unit="", device_class="", state_class=""):
    """Add a field no VE.Direct label covers (BLE-only values, derived metrics)."""
    if info(name) is None:
        _EXTRA.append((name, unit, device_class, state_class))


def info(name):
    """(name, unit, device_class, state_class) or None."""
    i = _TABLE.find("|" + name + ":")
    if i >= 0:
        return tuple(_TABLE[i + 1 : _TABLE.find("|", i + 1)].split(":"))
    for f in _EXTRA:
        if f[0] == name:
            return f
    return None
