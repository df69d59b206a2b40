"""InfluxDB line protocol for `vegw bridge`: the decoded 1-minute history
(and events, counters) as points, written to stdout (Telegraf's `execd`
input) and/or InfluxDB 1.x's HTTP write API (`/write`, precision s).

Point time = the record's own time, so a backlog replayed days later lands
where it belongs, and a record written twice (a bridge killed between its
write and its high-water mark) overwrites the same point: InfluxDB keys a
point by measurement + tags + time.

    vegw,gateway=G,device=D V=26.41,V_min=26.38,V_max=26.45,CS=3,LOAD=true 1800000060
    vegw_event,gateway=G,rule=low_bank event="raised",seq=812i,severity="alarm" 1800000123
    vegw_counters,gateway=G uptime=3600 1800003600

Numbers are written as floats (no `i` suffix) whatever the Python type, so a
field never changes type between firmware versions (InfluxDB refuses a type
change of a field); only an event's seq is an integer.
"""
import base64
import json
import urllib.error
import urllib.parse
import urllib.request

MEASUREMENT = "vegw"
EVENTS = "vegw_event"
COUNTERS = "vegw_counters"


def _esc_key(s):
    return str(s).replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _esc_meas(s):
    return str(s).replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def _field(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        f = float(v)
        if f != f or f in (float("inf"), float("-inf")):
            return None  # InfluxDB has no NaN/inf
        return repr(f)
    if isinstance(v, str):
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
    if isinstance(v, (list, dict)):
        return _field(json.dumps(v, separators=(",", ":")))
    return None


def line(measurement, tags, fields, t, ints=()):
    """One line of line protocol, or None when no field has a value.
    ints: field names written as integers."""
    fs = []
    for k in sorted(fields):
        v = fields[k]
        v = "%di" % v if k in ints and isinstance(v, int) and not isinstance(v, bool) else _field(v)
        if v is not None:
            fs.append("%s=%s" % (_esc_key(k), v))
    if not fs:
        return None
    ts = ",".join("%s=%s" % (_esc_key(k), _esc_key(v)) for k, v in sorted(tags.items()) if v not in (None, ""))
    return "%s%s %s %d" % (_esc_meas(measurement), "," + ts if ts else "", ",".join(fs), int(t))


def points(gateway, records):
    """Line-protocol lines for export records (cmd_logs.LogDecoder's shape)."""
    out = []
    for r in records:
        t = r.get("t")
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            continue
        if isinstance(r.get("device"), str):
            fields = dict((k, v) for k, v in r.items() if k not in ("t", "seq", "device", "gateway"))
            ln = line(MEASUREMENT, {"gateway": gateway, "device": r["device"]}, fields, t)
        elif isinstance(r.get("event"), str):
            # the shape docs/telegraf.conf gives the event topic: tags gateway and rule (two rules
            # firing in the same second are two points), event/severity strings
            fields = dict((k, v) for k, v in r.items() if k not in ("t", "gateway", "ts", "rule"))
            ln = line(EVENTS, {"gateway": gateway, "rule": r.get("rule") or r.get("source")}, fields, t, ("seq",))
        else:
            fields = dict((k, v) for k, v in r.items() if k not in ("t", "seq", "gateway"))
            ln = line(COUNTERS, {"gateway": gateway}, fields, t)
        if ln is not None:
            out.append(ln)
    return out


class WriteError(Exception):
    """The store refused or could not be reached (one line)."""


class InfluxWriter:
    """InfluxDB 1.x HTTP API: /write (precision s) and /query."""

    def __init__(self, url, db="vegw", user=None, password=None, timeout=10.0):
        self.url = url.rstrip("/")
        self.db = db
        self.timeout = timeout
        self.auth = None
        if user:
            tok = base64.b64encode(("%s:%s" % (user, password or "")).encode()).decode()
            self.auth = "Basic " + tok

    def _req(self, path, params, body=None):
        req = urllib.request.Request(self.url + path + "?" + urllib.parse.urlencode(params), data=body,
                                     method="POST" if body is not None or path == "/query" else "GET")
        if self.auth:
            req.add_header("Authorization", self.auth)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            raise WriteError("InfluxDB %s answered %d: %s" % (path, e.code, e.read()[:200].decode("utf-8", "replace")))
        except (urllib.error.URLError, OSError) as e:
            raise WriteError("InfluxDB at %s unreachable: %s" % (self.url, getattr(e, "reason", None) or e))

    def create_db(self):
        self._req("/query", {"q": 'CREATE DATABASE "%s"' % self.db.replace('"', "")}, b"")

    def write(self, lines):
        if lines:
            self._req("/write", {"db": self.db, "precision": "s"}, ("\n".join(lines) + "\n").encode())

    def query(self, q):
        """Rows of an InfluxQL query: [{column: value}] over every series."""
        _, body = self._req("/query", {"db": self.db, "q": q, "epoch": "s"}, b"")
        out = []
        for res in json.loads(body.decode()).get("results", ()):
            if "error" in res:
                raise WriteError("InfluxDB query: %s" % res["error"])
            for s in res.get("series", ()):
                tags = s.get("tags") or {}
                for row in s.get("values", ()):
                    d = dict(zip(s["columns"], row))
                    d.update(tags)
                    out.append(d)
        return out
