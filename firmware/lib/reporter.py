# Report by exception: decides when a device's state JSON must be published.
# Pure logic, no I/O, time passed in (now_ms from time.ticks_ms() on the board).
#
# A device's state is published whole when
#   - it was never published ("first"),
#   - any field moved beyond its deadband since the last *published* value
#     ("change"; slow drifts add up until they cross it), or
#   - heartbeat_s passed since the last publish ("heartbeat"),
# and not more often than min_interval_ms (0 = no hold-off; a change still
# pending when the hold-off ends is published then). With aligned=True the
# hold-off windows sit on multiples of min_interval_ms of the now_ms clock:
# every device with a pending change publishes in the same second, so the
# packets share TCP segments (Nagle) and the link wakes once per window.
#
# Deadband of a numeric field = max(absolute, relative % of the last published
# value), by unit (_BY_UNIT) or for a few fields (_BY_FIELD), overridable per
# field or per "device.field" by the caller.
# Fields with no unit (states, enums, bit masks, counters, booleans, text)
# publish on any change, as does a value becoming or leaving null.
import field_names

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_MAX_DEVICES = const(16)  # devices tracked; more are reported every time (and counted)
_PERIOD = const(0x40000000)  # ticks_ms period on MicroPython (2**30)
_HALF = const(0x20000000)

# unit -> (absolute deadband, relative % of the last published value).
# Currents and powers are wider than the resolution: a BMV beside an inverter
# jitters by +-0.3 A and a few W every second, and bench/bench_mqtt.py shows
# A 0.2|2 %, W 5|2 % costing ~1.4 MB/day against ~1 MB/day with these.
_BY_UNIT = (
    ("V", 0.05, 0), ("A", 0.5, 5), ("W", 10, 5), ("VA", 10, 5), ("%", 0.5, 0),
    ("°C", 0.5, 0), ("Ah", 0.1, 1), ("kWh", 0.01, 0), ("min", 10, 10), ("s", 300, 0),
    ("W/m²", 10, 5), ("dBm", 3, 0),
)

# fields whose unit default does not fit: AC voltage wanders by a volt, PV
# voltage jitters while the tracker searches, H9 (time since full) is history;
# energy and charge counters grow all day and are read as totals (a 0.01 kWh
# step would publish the whole state every minute: bench/bench_uplink.py)
_BY_FIELD = (
    ("AC_OUT_V", 2, 0), ("VPV", 1, 2), ("H9", 3600, 0),
    ("H17", 0.1, 0), ("H18", 0.1, 0), ("H19", 0.1, 0), ("H20", 0.05, 0), ("H22", 0.05, 0),
    ("ah_in_today", 1, 5), ("ah_out_today", 1, 5), ("kwh_in_today", 0.05, 5), ("kwh_out_today", 0.05, 5),
    ("pv_kwh_today", 0.05, 5), ("load_kwh_today", 0.05, 5), ("charge_kwh_today", 0.05, 5),
)


def tdiff(a, b):
    """a - b in ms, wrap-safe for ticks_ms (period 2**30), on both runtimes."""
    return ((a - b + _HALF) & (_PERIOD - 1)) - _HALF


def unit_deadband(unit):
    """(absolute, relative %) for a unit; (0, 0) = any change."""
    for u, a, r in _BY_UNIT:
        if u == unit:
            return a, r
    return 0, 0


class Reporter:
    def __init__(self, heartbeat_s=60, deadbands=None, min_interval_ms=0, aligned=False,
                 unit_deadbands=None, copy=True):
        """deadbands: {"V": 0.02, "P": (10, 3), "house.I": 0.5, ...}: a number
        is an absolute deadband, a pair is (absolute, relative %).
        unit_deadbands: {"A": (0.2, 2), ...} replaces the defaults of a unit.
        copy=False keeps the caller's dict as the published reference instead
        of a copy (RAM: one dict per device less) - only for a caller that
        never changes a dict after passing it (the gateway builds a fresh one
        per report); last(device) returns it."""
        self.copy = copy
        self.heartbeat_ms = int(heartbeat_s * 1000)
        self.min_interval_ms = min_interval_ms
        self.aligned = aligned and min_interval_ms > 0
        self.overrides = {}
        for k, v in (deadbands or {}).items():
            if isinstance(v, (tuple, list)):
                self.overrides[k] = (v[0], v[1])
            else:
                self.overrides[k] = (v, 0)
        self.units = {}
        for k, v in (unit_deadbands or {}).items():
            self.units[k] = (v[0], v[1]) if isinstance(v, (tuple, list)) else (v, 0)
        self._last = {}  # device -> (values dict published, now_ms)
        self.changed = []  # fields beyond their deadband in the last due()
        # counters
        self.checks = 0
        self.by_change = 0
        self.by_heartbeat = 0
        self.first = 0
        self.suppressed = 0
        self.untracked = 0  # checks of devices beyond _MAX_DEVICES

    def deadband(self, device, field):
        db = self.overrides.get(device + "." + field)
        if db is None:
            db = self.overrides.get(field)
        if db is None:
            for f, a, r in _BY_FIELD:
                if f == field:
                    return a, r
            inf = field_names.info(field)
            if inf is None:
                return 0, 0
            db = self.units.get(inf[1])
            if db is None:
                db = unit_deadband(inf[1])
        return db

    def moved(self, device, field, old, new):
        """True if new differs from old beyond the field's deadband."""
        if new is None or old is None or type(new) is bool or type(old) is bool:
            return new != old or type(new) is not type(old)
        tn = type(new)
        if (tn is not int and tn is not float) or (type(old) is not int and type(old) is not float):
            return new != old
        a, r = self.deadband(device, field)
        d = new - old
        if d < 0:
            d = -d
        if a == 0 and r == 0:
            return d != 0
        lim = abs(old) * r / 100
        if a > lim:
            lim = a
        # reaching the deadband counts (>=); a float printed from scaled
        # integers may sit a hair under it, hence the 1e-6 slack
        return d >= lim - 1e-6 * (lim if lim > 1 else 1)

    def due(self, device, values, now_ms):
        """"first", "change", "heartbeat" or None. Records nothing; self.changed
        lists the fields beyond their deadband."""
        self.checks += 1
        self.changed = []
        prev = self._last.get(device)
        if prev is None:
            self.changed = list(values)
            return "first"
        old, t = prev
        for f in values:
            if f not in old or self.moved(device, f, old[f], values[f]):
                self.changed.append(f)
        for f in old:
            if f not in values:
                self.changed.append(f)  # a field disappeared
        age = tdiff(now_ms, t)
        if self.changed:
            if self.aligned:
                # a new window began since the last publish (ticks wrap every
                # 2**30 ms, not a multiple: one odd window per 12 days)
                w = self.min_interval_ms
                if now_ms // w != t // w or age >= w:
                    return "change"
            elif age >= self.min_interval_ms:
                return "change"
            return None
        if age >= self.heartbeat_ms:
            return "heartbeat"
        return None

    def sent(self, device, values, now_ms):
        """Record values as published at now_ms (call after a publish)."""
        if device not in self._last and len(self._last) >= _MAX_DEVICES:
            self.untracked += 1
            return
        self._last[device] = (dict(values) if self.copy else values, now_ms)

    def last(self, device):
        """The values last recorded as published for device, or None."""
        p = self._last.get(device)
        return None if p is None else p[0]

    def check(self, device, values, now_ms):
        """due() and, when due, sent(): the one call of the simple case."""
        why = self.due(device, values, now_ms)
        if why is None:
            self.suppressed += 1
            return None
        if why == "change":
            self.by_change += 1
        elif why == "heartbeat":
            self.by_heartbeat += 1
        else:
            self.first += 1
        self.sent(device, values, now_ms)
        return why

    def forget(self, device):
        self._last.pop(device, None)

    def counters(self):
        return {"checks": self.checks, "first": self.first, "by_change": self.by_change,
                "by_heartbeat": self.by_heartbeat, "suppressed": self.suppressed,
                "untracked": self.untracked}
