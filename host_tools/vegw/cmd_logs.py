"""`vegw logs`: export a gateway's logged history as CSV, Parquet or JSON lines.

Sources (exactly one):
  --from-file FILE            a file pulled earlier: JSON lines, a JSON array, our CSV,
                              a Parquet file written by this command, a raw flash-log
                              image (the simulator's flash.bin; read from a copy), or
                              captured <prefix>/<gw>/log messages: {"seq","type","hex"}
                              lines, a thin-uplink binary batch (lib/logpack.py) or its
                              hex lines (`mosquitto_sub -F %x`)
  --broker HOST:PORT --gateway ID
                              ask the gateway over MQTT (request/response below)
  --port PORT                 USB: reads the log on the board over the raw REPL
                              (mpremote transport, vegw.deploy_link)

JSON lines output is the input of `vegw alarms replay`: one decoded block per
line, {"t": unix seconds, "device": NAME, FIELD: value, ...}, in time order.

MQTT log request/response (what the firmware answers on its command topic):
  request  -> <prefix>/<gw>/cmd   {"cmd": "logs", "from_seq": N, "max": M, "id": "<req id>"}
  response <- <prefix>/<gw>/logs  {"id": "<req id>", "records": [REC, ...],
                                   "next_seq": K, "more": true|false}
             or                   {"id": "<req id>", "error": "why"}
  REC = {"seq": S, "t": unix seconds, "device": NAME, FIELD: value, ...}
  One response per request, at most M records (the gateway may send fewer to fit
  its buffers), oldest first, all with seq >= N. `next_seq` is where the next
  request starts; `more: false` means nothing newer is logged yet. Records
  without "device" (events, counters) may appear and are kept only in CSV/Parquet
  when --all is given. The CLI repeats the request from next_seq until more is
  false, retries a request that got no answer (same id, --retries times), and
  de-duplicates by seq, so a lost or repeated response is harmless.
"""
import csv
import datetime
import io
import json
import os
import sys
import threading
import time
import uuid

from . import mqtt_link

_FIRST = ("V", "I", "P", "SOC", "PPV", "VPV", "IL", "T", "CE")


def add_arguments(parser):
    src = parser.add_argument_group("source (one of)")
    src.add_argument("--from-file", metavar="FILE", help="JSON lines, JSON array, CSV or Parquet pulled earlier")
    src.add_argument("--port", metavar="PORT", help="USB serial port of the board (raw REPL; stops the running app)")
    parser.add_argument("--gateway", metavar="ID", help="gateway id (with --broker)")
    parser.add_argument("--prefix", default="vegw", help="topic prefix (default vegw)")
    parser.add_argument("--from-seq", type=int, default=0, metavar="N", help="first sequence number to request")
    parser.add_argument("--batch", type=int, default=200, metavar="M", help="records per request (default 200)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds to wait per response")
    parser.add_argument("--retries", type=int, default=2, help="re-requests after a timeout (default 2)")
    mqtt_link.add_arguments(parser).description = "request the log over MQTT (--broker, with --gateway)"
    parser.add_argument("--format", choices=("csv", "parquet", "jsonl"),
                        help="output format (default: from --out's extension: .csv, .parquet/.pq, .jsonl/.ndjson, others refused; jsonl for stdout)")
    parser.add_argument("--out", default="-", metavar="FILE", help="output file ('-' = stdout, not for parquet)")
    parser.add_argument("--from", dest="t_from", metavar="T", help="keep samples at or after T (unix s or ISO 8601)")
    parser.add_argument("--to", dest="t_to", metavar="T", help="keep samples before or at T")
    parser.add_argument("--device", action="append", metavar="NAME", help="keep only this device (repeatable)")
    parser.add_argument("--all", action="store_true", help="keep records without a device (CSV/Parquet only)")


class LogError(Exception):
    """One-line reason for the user."""


def _err(msg):
    sys.stderr.write("vegw logs: %s\n" % msg)
    return 2


# ------------------------------------------------------------------ time

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
        except ImportError:
            records = None
        self.records = records
        self.minutes = records.MinuteDecoder() if records is not None else None

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
        if R is None:
            self.skipped += 1
            return []
        out = []
        if rtype in (R.T_KEY, R.T_DELTA):
            for minute in self.minutes.decode(rtype, b) or ():
                for dev, vals in minute.get("devices", {}).items():
                    out.append(normalize({"seq": seq, "t": minute["t"], "device": dev, "values": vals}))
        elif rtype == R.T_EVENT:
            ev = R.decode_event(b)
            if ev is not None:  # not a device block: no "device" key (kept with --all)
                out.append({"seq": seq, "t": ev["t"], "event": ev["event"], "source": ev["device"],
                            "state": ev["state"]})
        else:
            tv = R.decode_values(b)
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
_USB_SCRIPT = """
try:
    _vl
except NameError:
    _vl = None
    try:
        from drivers import flash_esp32 as _vf
        import flashlog as _vfl
        _vl = _vfl.FlashLog(_vf.open_default())
    except ImportError as e:
        print("@@E no flash log on this firmware (%%s)" %% e)
if _vl is not None:
    import binascii as _vx
    _vn = 0
    _vf0 = %d
    # binary minute frames need the key frame before the first wanted seq
    _vf1 = (_vl.find_before(_vf0, 16) or _vf0) if _vf0 and %d else (_vf0 or _vl.oldest_seq() or 1)
    for _vs, _vt, _vp in _vl.read_from(_vf1):
        if _vn >= %d:
            break
        _vb = bytes(_vp)
        if _vt < 16 and _vb[:1] == b"{":
            print('@@R{"seq":%%d,"type":%%d,' %% (_vs, _vt) + _vb[1:].decode())
        elif _vt:
            print("@@B%%d %%d %%s" %% (_vs, _vt, _vx.hexlify(_vb).decode()))
        _vn += 1
        _vlast = _vs
    print("@@D%%d %%d" %% (_vn, _vlast if _vn else 0))
"""


def fetch_usb(port, from_seq=0, batch=200, progress=None, link_factory=None):
    """Read the board's flash log over the raw REPL, `batch` records per exec."""
    if link_factory is None:
        from .deploy_link import DeviceLink, LinkError

        def link_factory(p):
            try:
                return DeviceLink(p)
            except LinkError as e:
                raise LogError(str(e))
    link = link_factory(port)
    out = {}
    seq = from_seq
    dec = LogDecoder()
    first = True
    try:
        while True:
            try:
                text = link.exec(_USB_SCRIPT % (seq, 1 if first else 0, batch)).decode("utf-8", "replace")
            except Exception as e:  # noqa: BLE001 - LinkError and transport errors: one line
                raise LogError("reading the log on %s: %s" % (port, e))
            done = None
            for line in text.splitlines():
                if line.startswith("@@E"):
                    raise LogError("%s: %s" % (port, line[3:].strip()))
                if line.startswith("@@R"):
                    rec = _stream_record_text(line[3:])
                    if rec is not None:
                        for r in dec.feed(rec.pop("seq"), rec.pop("type", 1), json.dumps(rec).encode()):
                            out[_key(r)] = r
                elif line.startswith("@@B"):
                    try:
                        bs, bt, bx = line[3:].split()
                        recs = dec.feed(int(bs), int(bt), bytes.fromhex(bx))
                    except ValueError:
                        recs = []
                    for r in recs:
                        out[_key(r)] = r  # one binary frame holds several minutes: key on t too
                elif line.startswith("@@D"):
                    n, last = (int(x) for x in line[3:].split())
                    done = (n, last)
            if done is None:
                raise LogError("%s: the board gave no answer to the log read" % port)
            if progress:
                progress(len(out), done[1])
            first = False
            if done[0] < batch:
                break
            seq = done[1] + 1
    finally:
        try:
            link.close()
        except Exception:  # noqa: BLE001 - already gone
            pass
    return [out[k] for k in sorted(out) if k[0] >= from_seq]


def _key(r):
    t = r.get("t")
    return (r["seq"], t if isinstance(t, (int, float)) else 0, r.get("device") or "")


def _stream_record_text(text):
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("seq"), int) else None


# ------------------------------------------------------------------ MQTT fetch

def fetch_mqtt(args, gateway, prefix="vegw", from_seq=0, batch=200, timeout=10.0, retries=2, progress=None):
    """Request the gateway's log from `from_seq` on; return the records.
    args: the parsed broker options (mqtt_link.add_arguments)."""
    base = "%s/%s" % (prefix.rstrip("/"), gateway)
    replies = []
    cond = threading.Condition()

    def on_subscribe(c, u, mid, rcs, props=None):
        with cond:
            replies.append("subscribed")
            cond.notify_all()

    def on_message(c, u, msg):
        if msg.payload[:1] == bytes([_BATCH_MAGIC]):  # a binary batch: its records as the JSON shape
            with cond:
                for seq, rtype, body in log_message_records(msg.payload):
                    replies.append({"seq": seq, "type": rtype, "hex": bytes(body).hex()})
                cond.notify_all()
            return
        try:
            obj = json.loads(msg.payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(obj, dict):
            with cond:
                replies.append(obj)
                cond.notify_all()

    def on_connect(cl):
        cl.on_subscribe = on_subscribe  # before the SUBACK can arrive
        cl.subscribe(base + "/logs", qos=1)

    try:
        c = mqtt_link.connect(args, "vegw-logs", on_connect=on_connect, on_message=on_message)
    except mqtt_link.LinkError as e:
        raise LogError(str(e))
    try:
        with cond:
            if not cond.wait_for(lambda: "subscribed" in replies, 10):
                raise LogError("broker did not confirm the subscription to %s/logs" % base)
        records = {}
        seq = from_seq
        tries = 0
        while True:
            kind, got, info = _one_request(c, base, cond, replies, seq, batch, timeout)
            for r in got:
                records[r["seq"]] = r
            if progress:
                progress(len(records), seq)
            if kind == "error":
                raise LogError("gateway %s: %s" % (gateway, info))
            if kind == "batch":
                nxt = info.get("next_seq")
                if not info.get("more") or not isinstance(nxt, int) or nxt <= seq:
                    break
                seq, tries = nxt, 0
            elif kind == "done":
                # stream shape: the gateway stopped at `max` records -> ask for the rest
                if got and isinstance(info, int) and info >= batch:
                    seq, tries = max(r["seq"] for r in got) + 1, 0
                    continue
                break
            else:  # timeout
                if got:
                    seq, tries = max(r["seq"] for r in got) + 1, 0
                    continue
                tries += 1
                if tries > retries:
                    raise LogError("no reply from gateway %s on %s/logs within %g s (%d tries); is it online and "
                                   "does its firmware answer {\"cmd\": \"logs\"}?" % (gateway, base, timeout, tries))
        dec = LogDecoder()
        out = []
        for k in sorted(records):
            r = records[k]
            if isinstance(r.get("hex"), str) and isinstance(r.get("type"), int):
                try:  # a binary (records.py) frame, sent as hex
                    out.extend(dec.feed(k, r["type"], bytes.fromhex(r["hex"])))
                except ValueError:
                    dec.skipped += 1
            else:
                out.append(normalize(r))
        return out
    finally:
        mqtt_link.close(c)


def _one_request(c, base, cond, replies, seq, batch, timeout):
    """Send one request; return (kind, records, info):
    ("batch", recs, reply) | ("done", recs, count) | ("error", recs, why) | ("timeout", recs, None).
    Two response shapes are understood: one batch message echoing the id, or
    one message per record ({"seq", ...}) closed by {"done": true, "count": n}."""
    rid = uuid.uuid4().hex[:12]
    c.publish(base + "/cmd", json.dumps({"cmd": "logs", "from_seq": seq, "max": batch, "id": rid}), qos=1)
    got = []
    deadline = time.monotonic() + timeout  # idle timeout: every record pushes it out
    while True:
        with cond:
            if not replies:
                cond.wait(max(0.0, deadline - time.monotonic()))
            pending = [r for r in replies if isinstance(r, dict)]
            replies[:] = []
        for r in pending:
            rid_r = r.get("id")
            if rid_r is not None and rid_r != rid:
                continue  # an answer to an older request
            if "error" in r:
                return "error", got, r["error"]
            if isinstance(r.get("records"), list):
                recs = [x for x in r["records"] if isinstance(x, dict) and isinstance(x.get("seq"), int)]
                return "batch", got + recs, r
            if r.get("done"):
                return "done", got, r.get("count")
            if isinstance(r.get("seq"), int):
                got.append(r)
                deadline = time.monotonic() + timeout
        if time.monotonic() >= deadline:
            return "timeout", got, None


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


def _progress(n, seq):
    sys.stderr.write("\rfetched %d records (seq %s)" % (n, seq))
    sys.stderr.flush()


def load(args):
    """Records from the one source the arguments name."""
    sources = [s for s in (args.from_file, args.broker, args.port) if s]
    if len(sources) != 1:
        raise LogError("give exactly one source: --from-file FILE, --broker HOST:PORT --gateway ID, or --port PORT")
    if args.port:
        return fetch_usb(args.port, args.from_seq, max(1, args.batch),
                         _progress if sys.stderr.isatty() else None)
    if args.from_file:
        return read_records(args.from_file)
    if not args.gateway:
        raise LogError("--broker needs --gateway ID")

    recs = fetch_mqtt(args, args.gateway, args.prefix, args.from_seq, max(1, args.batch), args.timeout,
                      max(0, args.retries), _progress if sys.stderr.isatty() else None)
    for r in recs:
        r.setdefault("gateway", args.gateway)
    return recs


_FORMAT_OF_EXT = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def run(args):
    fmt = args.format
    if fmt is None and args.out == "-":
        fmt = "jsonl"
    elif fmt is None:
        ext = os.path.splitext(args.out)[1].lower()
        fmt = _FORMAT_OF_EXT.get(ext)
        if fmt is None:  # never JSON lines under a name that promises something else
            return _err("--out %s: unknown extension %r; use %s, or name the format with --format"
                        % (args.out, ext, ", ".join(sorted(_FORMAT_OF_EXT))))
    if fmt == "parquet" and args.out == "-":
        return _err("--format parquet needs --out FILE")
    if fmt == "jsonl" and args.all:
        return _err("--all keeps records without a device; JSON lines (replay input) cannot hold them")
    try:
        t_from, t_to = parse_time(args.t_from), parse_time(args.t_to)
        recs = select(load(args), t_from, t_to, args.device, args.all)
        if fmt == "parquet":
            write_parquet(recs, args.out)
        else:
            writer = write_csv if fmt == "csv" else write_jsonl
            if args.out == "-":
                writer(recs, sys.stdout)
            else:
                try:
                    with open(args.out, "w", newline="") as f:
                        writer(recs, f)
                except OSError as e:
                    raise LogError("cannot write %s: %s" % (args.out, e.strerror or e))
    except LogError as e:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        return _err(str(e))
    if args.out != "-":
        devs = sorted({r["device"] for r in recs if isinstance(r.get("device"), str)})
        span = (" %s .. %s" % (iso(recs[0]["t"]), iso(recs[-1]["t"]))) if recs else ""
        print("wrote %s: %d records, %d device%s%s (%s)" % (args.out, len(recs), len(devs),
                                                              "" if len(devs) == 1 else "s", span, fmt))
    return 0
