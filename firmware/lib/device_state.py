# One device as the gateway holds it (its raw and SI values, the window it
# aggregates for the flash log, its last publish and availability), and how
# values are written into messages: compact JSON, floats at their own
# resolution. Split from gateway.py, which keeps the table of these.
import json

import log_windows
import records
import vedirect_fields as VF


class Device:
    def __init__(self, name, kind, stale_s):
        self.name = name
        self.kind = kind  # "vedirect" | "ble"
        self.stale_s = stale_s
        self.raw = {}  # VE.Direct: raw scaled values; BLE: SI values
        self.last_s = None  # time of the last reading
        self.readings = 0
        self.ident_serial = None
        self.mac = None
        self.model = None
        self.pub_s = None  # time of the last state publish (its values: reporter)
        self.dirty = False  # a value moved beyond its deadband since pub_s
        self.agg = log_windows.Agg()  # the current log window
        self.derived = None  # derived metrics (metrics.py), merged into the state
        self.announced = 0  # fields announced by HA discovery
        self.online = None  # last published availability (None: not yet)

    def values(self):
        """Latest values, SI units, derived metrics included (allocates)."""
        if self.kind == "vedirect":
            out = {}
            for k, v in self.raw.items():
                out[k] = VF.to_si(k, v)
        else:
            out = dict(self.raw)
        if self.derived:
            for k in self.derived:
                out[k] = self.derived[k]
        return out


def compact(obj):
    # no spaces after , and : (~2 B per field; cellular sites pay per byte)
    return json.dumps(obj, separators=(",", ":")).encode()


def num_text(v):
    """A float as JSON at its own resolution: '%.15g' drops the binary noise
    MicroPython prints ("SOC":84.90000000000001) and keeps every digit a
    Victron value has (15 significant); a whole float keeps its ".0"."""
    if v != v or v in (_INF, -_INF):
        return "null"
    t = "%.15g" % v
    for ch in t:
        if ch in ".en":
            return t
    return t + ".0"


_INF = float("inf")


def state_json(vals):
    """A flat dict of values (a device's state) as compact JSON bytes, floats
    through num_text."""
    parts = []
    for k in vals:
        v = vals[k]
        parts.append(json.dumps(k) + ":" + (num_text(v) if type(v) is float else json.dumps(v)))
    return ("{" + ",".join(parts) + "}").encode()


def tidy(derived):
    """Derived metrics as published and fed to rules: the unknown ones left
    out, floats at the log's resolution instead of 16 digits."""
    out = {}
    for k in derived:
        v = derived[k]
        if v is None:
            continue
        if type(v) is float:
            v = round(v, records.res(k)[0])
        out[k] = v
    return out
