"""Logged history on the host: reading what was pulled or captured (JSON
lines, JSON arrays, CSV, Parquet, raw flash-log images, captured log
messages and thin-uplink batches), decoding the flash log's records
(log_decode.py: LogDecoder, with the clock conversion of lib/timefix.py), and writing the
flat records as JSON lines, CSV or Parquet. `vegw logs`, the bridge, the
dashboard and `vegw alarms replay` share it; fetching from a gateway is in
cmd_logs.py."""
import csv
import datetime
import io
import json
import os

from .log_decode import (  # noqa: F401 - history.* for its readers
    BATCH_MAGIC, LogDecoder, LogError, convert_clock, decode_log_messages, log_message_records, normalize, read_flash_image,
)

_FIRST = ("V", "I", "P", "SOC", "PPV", "VPV", "IL", "T", "CE")




def parse_time(text):
    """Unix seconds from a number or an ISO 8601 date/time (naive = UTC)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        d = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise LogError("time %r: give unix seconds or ISO 8601 like 2026-11-28T06:00" % text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d.timestamp()


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ reading

def _scalar(text):
    if text == "":
        return None
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_records(path):
    """Records (dicts) from JSON lines, a JSON array, our CSV or Parquet."""
    if path.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise LogError("reading Parquet needs pyarrow, which is not installed: pip install 'vegw[parquet]'")
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types
            raise LogError("%s: not a readable Parquet file (%s)" % (path, str(e).splitlines()[0]))
        return [{k: v for k, v in r.items() if v is not None and k != "time_utc"} for r in rows]
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise LogError("%s: cannot read: %s" % (path, e.strerror or e))
    if raw[:1] == bytes([BATCH_MAGIC]):  # one thin-uplink message saved as is
        return decode_log_messages([raw])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return read_flash_image(path, raw)
    head = text.lstrip()[:1]
    if text.lstrip()[:4].lower() == "b101":  # `mosquitto_sub -t vegw/GW/log -F %x`: one batch per line
        try:
            return decode_log_messages([bytes.fromhex(x) for x in text.split()])
        except ValueError as e:
            raise LogError("%s: hex lines of log messages expected: %s" % (path, e))
    if head == "[":
        try:
            data = json.loads(text)
        except ValueError as e:
            raise LogError("%s: not valid JSON: %s" % (path, e))
        return [normalize(r) for r in data if isinstance(r, dict)]
    if head == "{":
        out = []
        raw_msgs = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise LogError("%s:%d: not valid JSON: %s" % (path, n, e))
            if isinstance(obj, dict):
                if isinstance(obj.get("hex"), str) and isinstance(obj.get("type"), int):
                    raw_msgs.append(line.encode())  # a full-uplink log message: decoded below, in seq order
                elif isinstance(obj.get("records"), list):  # a saved MQTT response
                    out.extend(normalize(r) for r in obj["records"] if isinstance(r, dict))
                elif not obj.get("done"):
                    out.append(normalize(obj))
        return out + decode_log_messages(raw_msgs) if raw_msgs else out
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or "t" not in rows[0]:
        raise LogError("%s: neither JSON lines nor a CSV with a 't' column" % path)
    hdr = rows[0]
    out = []
    for r in rows[1:]:
        if not r:
            continue
        rec = {}
        for k, v in zip(hdr, r):
            if k == "time_utc":
                continue
            val = v if k in ("device", "gateway") else _scalar(v)
            if val is not None and val != "":
                rec[k] = val
        out.append(rec)
    return out


# ------------------------------------------------------------------ shaping and writing

def select(records, t_from=None, t_to=None, devices=None, keep_all=False):
    """Records with a numeric t in range (and a device unless keep_all), in time order."""
    out = []
    for r in records:
        t = r.get("t")
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            continue
        if t_from is not None and t < t_from or t_to is not None and t > t_to:
            continue
        dev = r.get("device")
        if not isinstance(dev, str):
            if not keep_all:
                continue
        elif devices and dev not in devices:
            continue
        out.append(r)
    out.sort(key=lambda r: (r["t"], r.get("seq") if isinstance(r.get("seq"), int) else 0))
    return out


def field_columns(records):
    keys = set()
    for r in records:
        keys.update(r.keys())
    keys -= {"t", "device", "seq", "gateway"}
    first = [k for k in _FIRST if k in keys]
    return first + sorted(keys - set(first))


def write_jsonl(records, f):
    for r in records:
        if not isinstance(r.get("device"), str):
            continue
        line = {"t": r["t"], "device": r["device"]}
        for k, v in r.items():
            if k not in ("t", "device", "seq", "gateway"):
                line[k] = v
        f.write(json.dumps(line) + "\n")


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def write_csv(records, f):
    fields = field_columns(records)
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["t", "time_utc", "gateway", "device", "seq"] + fields)
    for r in records:
        w.writerow([_cell(r["t"]), iso(r["t"]), _cell(r.get("gateway")), _cell(r.get("device")), _cell(r.get("seq"))]
                   + [_cell(r.get(k)) for k in fields])


def write_parquet(records, path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise LogError("--format parquet needs pyarrow, which is not installed: pip install 'vegw[parquet]'")
    fields = field_columns(records)
    cols = {"t": pa.array([float(r["t"]) for r in records], pa.float64()),
            "time_utc": pa.array([int(r["t"] * 1000) for r in records], pa.timestamp("ms", tz="UTC"))}
    for k in ("gateway", "device"):
        cols[k] = pa.array([r.get(k) if isinstance(r.get(k), str) else None for r in records], pa.string())
    cols["seq"] = pa.array([r.get("seq") if isinstance(r.get("seq"), int) else None for r in records], pa.int64())
    for k in fields:
        vals = [r.get(k) for r in records]
        present = [v for v in vals if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            typ = pa.bool_()
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            typ = pa.int64()
        elif present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            typ = pa.float64()
            vals = [float(v) if v is not None else None for v in vals]
        else:
            typ = pa.string()
            vals = [None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in vals]
        cols[k] = pa.array(vals, typ)
    try:
        pq.write_table(pa.table(cols), path)
    except OSError as e:
        raise LogError("cannot write %s: %s" % (path, e))
