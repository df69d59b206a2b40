# Names for people, from VE.Direct values: product names by PID, enum and
# bit-mask texts, and the one-shot decode() for host tools. Split from
# vedirect_fields.py so the gateway's heap does not hold these tables: the
# gateway loads this module for product_name() and drops it again on
# MicroPython (gateway.product_name: asked once per device).
import ve_enums
import vedirect_fields as _vf


# Enumerated labels -> ve_enums table, and bit-mask labels -> bit table.
ENUMS = (("CS", ve_enums.DEVICE_STATE), ("ERR", ve_enums.CHARGER_ERROR),
         ("MPPT", ve_enums.TRACKER_MODE), ("MODE", ve_enums.DEVICE_MODE),
         ("MON", ve_enums.MONITOR_MODE))
BITS = (("AR", ve_enums.ALARM_REASON_BITS), ("WARN", ve_enums.ALARM_REASON_BITS),
        ("OR", ve_enums.OFF_REASON_BITS))


def decode(block):
    """A verified Block -> dict label -> SI value (allocates; host side)."""
    raw = {}
    _vf.update(block, raw)
    return {name: _vf.to_si(name, v) for name, v in raw.items()}


def enum_table(name):
    for n, t in ENUMS:
        if n == name:
            return t
    return None


def bits_table(name):
    for n, t in BITS:
        if n == name:
            return t
    return None


def text(name, value):
    """Human text for an enum or bit-mask field value (None if not an enum)."""
    t = enum_table(name)
    if t is not None:
        return ve_enums.name(t, value)
    t = bits_table(name)
    if t is not None:
        names = ve_enums.bit_names(t, value)
        return None if names is None else ",".join(names)
    return None


# -- PID -> product name ------------------------------------------------------
# VE.Direct Protocol 3.29 pp.8-10, plus later ids from BlueSolar HEX rev 10 and
# the 3.33 list as carried by peer decoders (../shared/reference/vedirect.md
# s.4.8). Names of regular families (MPPT ranges, Phoenix inverters) are
# built from short pattern tables instead of one string per id.

# one string ",pid=name,...," (decimal pid): a single object, see ve_enums
_PID_NAMES = (
    ","
    "515=BMV-700,516=BMV-702,517=BMV-700H,768=BlueSolar MPPT 70/15,41856=BMV-710 Smart,"
    "41857=BMV-712 Smart,41858=BMV-710H Smart,41859=BMV-712 Smart Rev2,"
    "41865=SmartShunt 500A/50mV,41866=SmartShunt 1000A/50mV,41867=SmartShunt 2000A/50mV,"
    "41868=SmartShunt IP67 500A/50mV,41869=SmartShunt IP67 1000A/50mV,"
    "41870=SmartShunt IP67 2000A/50mV,49208=SmartShunt 300A/50mV,49204=BMV-800 Smart,"
    "41968=Orion XS 12V/12V-50A,41232=SmartSolar MPPT RS 450/100,"
    "41233=SmartSolar MPPT RS 450/200,41086=SmartSolar MPPT 100/30 12V,"
    "41087=All-In-1 SmartSolar MPPT 75/15 12V,41792=Phoenix Smart IP43 Charger 12/50 (1+1),"
    "41793=Phoenix Smart IP43 Charger 12/50 (3),41794=Phoenix Smart IP43 Charger 24/25 (1+1),"
    "41795=Phoenix Smart IP43 Charger 24/25 (3),41796=Phoenix Smart IP43 Charger 12/30 (1+1),"
    "41797=Phoenix Smart IP43 Charger 12/30 (3),41798=Phoenix Smart IP43 Charger 24/16 (1+1),"
    "41799=Phoenix Smart IP43 Charger 24/16 (3),41985=Inverter RS Solar 48V/6000VA,"
    "41986=Inverter RS 48V/6000VA,42049=Multi RS Solar 48V/6000VA,"
    "42050=Multi RS Solar 48V/6000VA,"
)

# MPPT families: (first pid, brand, ratings separated by ',')
_MPPT_RUNS = (
    (0xA040, "BlueSolar", "75/50,150/35,75/15,100/15,100/30,100/50,150/70,150/100,75/50 rev2,"
     "100/50 rev2,100/30 rev2,150/35 rev2,75/10,150/45,150/60,150/85"),
    (0xA050, "SmartSolar", "250/100,150/100,150/85,75/15,75/10,100/15,100/30,100/50,150/35,"
     "150/100 rev2,150/85 rev2,250/70,250/85,250/60,250/45,100/20,100/20 48V,150/45,150/60,"
     "150/70,250/85 rev2,250/100 rev2"),
    (0xA066, "BlueSolar", "100/20,100/20 48V"),
    (0xA068, "SmartSolar", "250/60 rev2,250/70 rev2,150/45 rev2,150/60 rev2,150/70 rev2,"
     "150/85 rev3,150/100 rev3"),
    (0xA06F, "BlueSolar", "150/45 rev2,150/60 rev2,150/70 rev2"),
    (0xA072, "BlueSolar", "150/45 rev3"),
    (0xA073, "SmartSolar", "150/45 rev3,75/10 rev2,75/15 rev2"),
    (0xA076, "BlueSolar", "100/30 rev3,100/50 rev3,150/35 rev3,75/10 rev2,75/15 rev2,100/15 rev2,"
     "75/10 rev3,75/15 rev3"),
    (0xA102, "SmartSolar", "VE.Can 150/70,VE.Can 150/45,VE.Can 150/60,VE.Can 150/85,"
     "VE.Can 150/100,VE.Can 250/45,VE.Can 250/60,VE.Can 250/70,VE.Can 250/85,VE.Can 250/100,"
     "VE.Can 150/70 rev2,VE.Can 150/85 rev2,VE.Can 150/100 rev2"),
    (0xA10F, "BlueSolar", "VE.Can 150/100"),
    (0xA112, "BlueSolar", "VE.Can 250/70,VE.Can 250/100"),
    (0xA114, "SmartSolar", "VE.Can 250/70 rev2,VE.Can 250/100 rev2,VE.Can 250/85 rev2"),
    (0xA117, "BlueSolar", "VE.Can 150/100 rev2"),
)

# Phoenix inverters 0xA2<r><v>: r = rating row, v = 1/2/4 (12/24/48 V)
# for 230 V and 9/A/C for 120 V.
_INV_RATINGS = ",0=250VA,1=375VA,2=500VA,3=250VA,4=375VA,5=500VA,6=800VA,7=1200VA,8=1600VA,9=2000VA,10=3000VA,11=5000VA,14=800VA,15=1200VA,"


def product_name(pid):
    """Product name for a PID (int), or None if unknown. Never raises."""
    if pid is None:
        return None
    n = ve_enums.name(_PID_NAMES, pid)
    if n != ve_enums.UNKNOWN:
        return n
    for first, brand, ratings in _MPPT_RUNS:
        parts = ratings.split(",")
        if first <= pid < first + len(parts):
            return brand + " MPPT " + parts[pid - first]
    if 0xA200 <= pid <= 0xA2FF:
        row = (pid >> 4) & 0xF
        v = pid & 0xF
        volts = {1: "12V", 2: "24V", 4: "48V", 9: "12V", 10: "24V", 12: "48V"}.get(v)
        rating = ve_enums.name(_INV_RATINGS, row)
        if volts and rating != ve_enums.UNKNOWN:
            ac = "120V" if v & 8 else "230V"
            smart = "Smart " if row >= 0xB else ""
            return "Phoenix Inverter %s%s %s %s" % (smart, volts, rating, ac)
    if 0xA300 <= pid <= 0xA30F or 0xA338 <= pid <= 0xA33C:
        return "Blue Smart IP65 Charger"
    if 0xA310 <= pid <= 0xA31D:
        return "Blue Smart IP67 Charger"
    if 0xA320 <= pid <= 0xA337:
        return "Blue Smart IP22 Charger"
    if 0xA350 <= pid <= 0xA357:
        return "Phoenix Smart IP43 Charger 120-240V"
    if 0xA3C0 <= pid <= 0xA3D3:
        return "Orion Smart DC-DC"
    if 0xA0E0 <= pid <= 0xA0F2:
        return "Smart Lithium battery"
    return None
