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
  response <- <prefix>/<gw>/logs  one message per flash-log record, oldest first, all
                                  with seq >= N, at most M: alarm events as JSON
                                  {"seq": S, ...}, minute blocks as {"seq": S, "type": T,
                                  "hex": ...} (lib/log_replay.log_message), then
                                  {"done": true, "count": n}
             or                   {"ok": false, "cmd": "logs", "error": "why"} on
                                  <prefix>/<gw>/cmd/reply (an export already running,
                                  bad arguments)
  When count reached M the CLI asks again from the last seq + 1; a request that got
  nothing is retried (--retries); records are de-duplicated by seq, so a lost or
  repeated message is harmless. A reply in one message ({"id", "records": [...],
  "next_seq", "more"}) is understood too (other tools may answer so); the firmware
  does not send it. Records without "device" (events) are kept only in CSV/Parquet
  when --all is given.
"""
import json
import os
import sys
import threading
import time
import uuid

from . import mqtt_link
from .history import (  # noqa: F401 - vegw.cmd_logs.* for the tools that read history
    BATCH_MAGIC, _FIRST, LogDecoder, LogError, convert_clock, decode_log_messages, field_columns, iso,
    log_message_records, normalize, parse_time, read_flash_image, read_records, select, write_csv, write_jsonl,
    write_parquet,
)

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


def _err(msg):
    sys.stderr.write("vegw logs: %s\n" % msg)
    return 2


# ------------------------------------------------------------------ sources

def fetch_usb(port, from_seq=0, batch=200, progress=None, link_factory=None):
    """Read the board's flash log over the raw REPL, `batch` records per exec
    (the program it runs there: vegw/device/logs_dump.py)."""
    from .device import program

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
                code = program("logs_dump", _v_from=seq, _v_first=1 if first else 0, _v_max=batch)
                text = link.exec(code).decode("utf-8", "replace")
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
        if msg.payload[:1] == bytes([BATCH_MAGIC]):  # a binary batch: its records as the JSON shape
            with cond:
                for seq, rtype, body in log_message_records(msg.payload):
                    replies.append({"seq": seq, "type": rtype, "hex": bytes(body).hex()})
                cond.notify_all()
            return
        try:
            obj = json.loads(msg.payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return
        if msg.topic.endswith("/cmd/reply") and not (isinstance(obj, dict) and obj.get("cmd") == "logs"
                                                     and obj.get("ok") is False):
            return  # replies to other commands
        if isinstance(obj, dict):
            with cond:
                replies.append(obj)
                cond.notify_all()

    def on_connect(cl):
        cl.on_subscribe = on_subscribe  # before the SUBACK can arrive
        cl.subscribe([(base + "/logs", 1), (base + "/cmd/reply", 1)])

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
