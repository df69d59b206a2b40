"""The flash log's records decoded on the host: log messages of both
uplinks (the full uplink's {"seq","type","hex"} and the thin uplink's binary
batches, lib/logpack.py), the binary minute frames (lib/records.py, through
records_dec) with the clock conversion of lib/timefix.py, raw flash-log
images, and the flat record shape every reader and writer of history.py
uses (normalize)."""
import json
import os


class LogError(Exception):
    """One-line reason for the user."""


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


BATCH_MAGIC = 0xB1  # lib/logpack.py: a thin-uplink log message


def log_message_records(payload):
    """[(seq, type, payload bytes)] of one message from <prefix>/<gw>/log:
    a thin-uplink binary batch (lib/logpack.py) or a full-uplink
    {"seq","type","hex"}; [] when it is neither."""
    b = bytes(payload)
    if b[:1] == bytes([BATCH_MAGIC]):
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
