"""Logged history on the host: reading what was pulled or captured (JSON
lines, JSON arrays, CSV, Parquet, raw flash-log images, captured log
messages and thin-uplink batches), decoding the flash log's records
(LogDecoder, with the clock conversion of lib/timefix.py), and writing the
flat records as JSON lines, CSV or Parquet. `vegw logs`, the bridge, the
dashboard and `vegw alarms replay` share it; fetching from a gateway is in
cmd_logs.py."""
# Length: one record format, read from every source it comes in and written
# to every export format; each reader and writer is a short function.
import csv
import datetime
import io
import json
import os

_FIRST = ("V", "I", "P", "SOC", "PPV", "VPV", "IL", "T", "CE")


class LogError(Exception):
    """One-line reason for the user."""


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
    if raw[:1] == bytes([_BATCH_MAGIC]):  # one thin-uplink message saved as is
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


_BATCH_MAGIC = 0xB1  # lib/logpack.py: a thin-uplink log message


def log_message_records(payload):
    """[(seq, type, payload bytes)] of one message from <prefix>/<gw>/log:
    a thin-uplink binary batch (lib/logpack.py) or a full-uplink
    {"seq","type","hex"}; [] when it is neither."""
    b = bytes(payload)
    if b[:1] == bytes([_BATCH_MAGIC]):
        import logpack

        return logpack.unpack(b) or []
    try:
        obj = json.loads(b.decode("utf-8"))
        if isinstance(obj.get("seq"), int) and isinstance(obj.get("type"), int) and isinstance(obj.get("hex"), str):
            return [(obj["seq"], obj["type"], bytes.fromhex(obj["hex"]))]
    except (ValueError, UnicodeDecodeError, AttributeError):
        pass
    return []


def decode_log_messages(payloads):
    """Export records from log messages in any order and with repeats (both
    uplink formats): de-duplicated by seq and decoded in seq order."""
    recs = {}
    for p in payloads:
        for seq, rtype, body in log_message_records(p):
            recs[seq] = (rtype, body)
    dec = LogDecoder()
    out = []
    for seq in sorted(recs):
        out.extend(dec.feed(seq, recs[seq][0], recs[seq][1]))
    return out


_BINARY_TYPES = (16, 17, 18, 19, 20)  # lib/records.py: T_KEY, T_DELTA, T_EVENT, T_COUNTERS, T_VALUES


_REC_CLOCK = 3  # lib/timefix.py: {"delta", "from_seq", "ts"}
_CLOCK_VALID = 1704067200  # lib/timefix.py: a time before it was stamped by an unset clock
_UNSET_EPOCH = 946684800  # where an unset ESP32 clock starts after power-on


def _unset_clock(rec):
    """A record stamped on a board's unset clock (an earlier boot that never
    learnt the time: the firmware converts the rest before sending) has no
    known time: t None and its seconds after that power-on, never a 2000 date."""
    t = rec.get("t")
    if isinstance(t, (int, float)) and t < _CLOCK_VALID:
        rec["t"] = None
        rec["uptime_s"] = t - _UNSET_EPOCH if t >= _UNSET_EPOCH else t
        rec["clock"] = "unset"
    return rec


def convert_clock(recs):
    """Raw flash records (seq, type, payload) in log order with the times
    stamped on an unset clock moved to their true times, where the boot that
    made them learnt the time later: its REC_CLOCK record says by how much
    and from which seq (lib/timefix.py; what the firmware does as it sends)."""
    import timefix

    marks = []
    for seq, rtype, p in recs:
        if rtype == _REC_CLOCK:
            try:
                d = json.loads(bytes(p))
                marks.append((int(d.get("from_seq") or 0), seq, int(d["delta"])))
            except (ValueError, KeyError, TypeError):
                pass
    if not marks:
        return recs
    out = []
    for seq, rtype, p in recs:
        for first, end, delta in marks:
            if first <= seq < end:
                p = timefix.fix_record(rtype, p, delta)
                break
        out.append((seq, rtype, p))
    return out


class LogDecoder:
    """Flash-log records (seq, type, payload) in log order -> export records.
    Types below 16 carry JSON (gateway.py: 2 event; timefix.py: 3 clock set);
    16..20 are lib/records.py's compact binary frames, decoded with its
    MinuteDecoder (a delta frame needs the key frame before it). The boot
    marker (type 0) and anything undecodable are counted, not exported."""

    def __init__(self):
        self.skipped = 0
        self.clock_marks = 0
        try:
            import records
            import records_dec
        except ImportError:
            records = records_dec = None
        self.records = records
        self.records_dec = records_dec
        self.minutes = records_dec.MinuteDecoder() if records_dec is not None else None

    def feed(self, seq, rtype, payload):
        return [_unset_clock(r) for r in self._feed(seq, rtype, payload)]

    def _feed(self, seq, rtype, payload):
        b = bytes(payload)
        if rtype in _BINARY_TYPES:
            return self._binary(seq, rtype, b)
        if rtype == _REC_CLOCK:  # the board's clock was set (lib/timefix.py): not a reading
            self.clock_marks += 1
            return []
        if rtype == 0 or b[:1] != b"{":
            self.skipped += rtype != 0
            return []
        try:
            obj = json.loads(b.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            self.skipped += 1
            return []
        if not isinstance(obj, dict):
            self.skipped += 1
            return []
        obj["seq"] = seq
        return [normalize(obj)]

    def _binary(self, seq, rtype, b):
        R = self.records
        D = self.records_dec
        if R is None:
            self.skipped += 1
            return []
        out = []
        if rtype in (R.T_KEY, R.T_DELTA):
            for minute in self.minutes.decode(rtype, b) or ():
                for dev, vals in minute.get("devices", {}).items():
                    out.append(normalize({"seq": seq, "t": minute["t"], "device": dev, "values": vals}))
        elif rtype == R.T_EVENT:
            ev = D.decode_event(b)
            if ev is not None:  # not a device block: no "device" key (kept with --all)
                out.append({"seq": seq, "t": ev["t"], "event": ev["event"], "source": ev["device"],
                            "state": ev["state"]})
        else:
            tv = D.decode_values(b)
            if tv is not None:
                rec = {"seq": seq, "t": tv[0]}
                rec.update(tv[1])
                out.append(rec)
        if not out:
            self.skipped += 1
        return out


def read_flash_image(path, raw):
    """Records of a raw flash-log image (lib/flashlog.py layout over
    drivers/nor_sim.py's file format, 4 KB blocks), read from a temp copy:
    opening a log writes a boot marker, and the user's file stays untouched."""
    import shutil
    import tempfile

    bs = 4096
    if len(raw) < 3 * bs or len(raw) % bs:
        raise LogError("%s: binary, but not a flash-log image (size %d is not a multiple of 4096 >= 3 blocks)"
                       % (path, len(raw)))
    try:
        import flashlog
        from drivers import nor_sim
    except ImportError as e:
        raise LogError("%s: cannot decode flash images here (%s)" % (path, e))
    tmpdir = tempfile.mkdtemp(prefix="vegw-logs-")
    try:
        copy = os.path.join(tmpdir, "flash.bin")
        shutil.copyfile(path, copy)
        bd = nor_sim.NorSim(len(raw) // bs, bs, path=copy, strict=False)
        log = flashlog.FlashLog(bd)
        out = []
        if log.opened_ok:
            dec = LogDecoder()
            recs = [(seq, rtype, bytes(p)) for seq, rtype, p in log.read_from(log.oldest_seq() or 1)]
            for seq, rtype, payload in convert_clock(recs):
                out.extend(dec.feed(seq, rtype, payload))
        bd.close()
        if not out:
            raise LogError("%s: binary, and no flash-log records in it" % path)
        return out
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


# Device-side snippet for --port: the log object stays in the REPL's globals
# between batches (opening a log scans flash and writes a boot marker).


def normalize(rec):
    """A logged record in the flat shape: {"t", "device", FIELD: value, ...}.
    The firmware logs per-interval aggregates as
    {"device", "t0", "ts", "values": {FIELD: [min, avg, max] | value}}: those
    become FIELD (avg), FIELD_min, FIELD_max, with t = ts (the end of the
    window: when the aggregate existed)."""
    vals = rec.get("values")
    if not isinstance(vals, dict):
        rec = {k: v for k, v in rec.items() if k != "type"}
        if "t" not in rec and isinstance(rec.get("ts"), (int, float)):
            rec["t"] = rec.pop("ts")
        return rec
    out = {k: v for k, v in rec.items() if k not in ("values", "t0", "ts", "type")}
    t = rec.get("ts", rec.get("t0"))
    if "t" not in out and t is not None:
        out["t"] = t
    for f, v in vals.items():
        if isinstance(v, list) and len(v) == 3:
            out[f + "_min"], out[f], out[f + "_max"] = v
        else:
            out[f] = v
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
