# Aliases of field names accepted by alarm rules and the config, and the
# full listings of the registry (field_names.py). Apart from field_names
# because the running gateway only needs field_names.info(): the config and
# rule checks (cfg_schema, alarm_rules: boot only) and the host tools import
# this module themselves.
import field_names

# Documented aliases accepted by rules and config: "|alias=canonical|..."
_ALIASES = (
    "|"
    "voltage=V|battery_voltage=V|current=I|battery_current=I|power=P|soc=SOC|"
    "state_of_charge=SOC|consumed_ah=CE|time_to_go=TTG|temperature=T|starter_voltage=VS|"
    "aux_voltage=VS|midpoint_voltage=VM|midpoint_deviation=DM|pv_voltage=VPV|pv_power=PPV|"
    "load_current=IL|load=LOAD|alarm_reason=AR|warning_reason=WARN|off_reason=OR|"
    "device_state=CS|state=CS|charger_error=ERR|error=ERR|tracker_mode=MPPT|device_mode=MODE|"
    "monitor_mode=MON|ac_out_voltage=AC_OUT_V|ac_out_current=AC_OUT_I|"
    "ac_out_apparent_power=AC_OUT_S|input_voltage=DC_IN_V|input_current=DC_IN_I|"
    "input_power=DC_IN_P|yield_today=H20|yield_yesterday=H22|yield_total=H19|"
    "max_power_today=H21|product_id=PID|serial=SER#|"
)


def resolve(name):
    """Canonical field name for a name or alias, or None if nothing produces it."""
    if field_names.info(name) is not None:
        return name
    return canonical(name)


def canonical(name):
    """Canonical name of a documented alias, or None."""
    i = _ALIASES.find("|" + name + "=")
    if i >= 0:
        i += len(name) + 2
        return _ALIASES[i : _ALIASES.find("|", i)]
    return None


def fields():
    """Every field as (name, unit, device_class, state_class) (allocates)."""
    out = [tuple(e.split(":")) for e in field_names._TABLE.split("|") if e]
    return out + list(field_names._EXTRA)


def all_names():
    out = [f[0] for f in fields()]
    out += [e.split("=")[0] for e in _ALIASES.split("|") if e]
    return out
