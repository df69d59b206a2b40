"""A site's history for the dashboard's charts: the gateway's flash log,
fetched over MQTT with the `logs` command and kept decoded in a small cache.

Protocol (the firmware's, see vegw/cmd_logs.py): publish
{"cmd":"logs","from_seq":N,"max":M,"id":...} to <prefix>/<gw>/cmd; the
gateway answers on <prefix>/<gw>/logs with one message per record
({"seq","type","hex"} binary minute blocks, JSON alarm events with "seq")
closed by {"done":true,"count":n}; a batch shape {"records":[...],
"next_seq","more"} is understood too. The dashboard's one MQTT connection
subscribes to <prefix>/+/logs; messages for a gateway nobody is fetching are
dropped at once.

Cache: per site, the decoder state (records_dec.MinuteDecoder via
cmd_logs.LogDecoder: a delta block needs the blocks before it) and the
decoded minutes of the chart fields in arrays (4 bytes a value, 8 a time),
at most 31 days; the next fetch asks only for records after the last seq
seen. At most `max_sites` sites are kept (least recently used goes), so the
cache holds ~3 MB a site for a month of three devices (bench_dashboard.py).
"""
import array
import asyncio
import collections
import json
import math
import time
import uuid

from .. import cmd_logs

SPANS = {"day": 86400, "week": 7 * 86400, "month": 30 * 86400}
KEEP_S = 31 * 86400
POINTS = 720  # per series and span: one point per 2 min (day), 14 min (week), 1 h (month)
MAX_RECORDS = 20000  # per fetch (a month of 5-minute blocks is 8,640)
# fields charted (when a device logs them); others stay in the site page's table
CHART_FIELDS = ("SOC", "V", "I", "P", "PPV", "VPV", "IL", "load_power", "AC_OUT_S", "ac_out_power", "T",
                "H20", "pv_kwh_today")


def field_meta(name):
    """{"unit", "decimals"}: the decimals the device's values carry
    (records.res: the log's resolution, e.g. V 0.01, SOC 0.1, PPV 1)."""
    import field_names
    import records

    info = field_names.info(name)
    return {"unit": info[1] if info else "", "decimals": records.res(name)[0]}


class _Series:
    __slots__ = ("t", "fields")

    def __init__(self):
        self.t = array.array("d")
        self.fields = {}  # name -> array('f'), NaN where absent

    def add(self, t, rec):
        if self.t and t <= self.t[-1]:
            return False  # a repeat (or out of order): minutes only move forward
        n = len(self.t)
        self.t.append(t)
        for f in CHART_FIELDS:
            v = rec.get(f)
            col = self.fields.get(f)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                if col is not None:
                    col.append(math.nan)
                continue
            if col is None:
                col = self.fields[f] = array.array("f", [math.nan]) * n
            col.append(v)
        return True

    def trim(self, t_min):
        k = 0
        while k < len(self.t) and self.t[k] < t_min:
            k += 1
        if k:
            del self.t[:k]
            for col in self.fields.values():
                del col[:k]


class _Site:
    def __init__(self):
        self.decoder = cmd_logs.LogDecoder()
        self.last_seq = -1
        self.series = collections.OrderedDict()  # device -> _Series
        self.records = 0
        self.fetched_at = None  # monotonic
        self.fetched_unix = None
        self.error = None
        self.lock = asyncio.Lock()
        self.events = []  # alarm events read back (merged into the fleet's history)


class History:
    """publish(topic, payload_str, qos): the dashboard's MQTT publish.
    on_events(gw, [event dicts]): alarm events found in the log."""

    def __init__(self, publish, prefix="vegw", on_events=None, max_sites=16, batch=500, timeout=10.0, retries=2,
                 ttl=60.0, concurrency=4, enabled=True, clock=time.time):
        self.publish = publish
        self.prefix = prefix.rstrip("/")
        self.on_events = on_events
        self.max_sites = max_sites
        self.batch = max(1, min(2000, batch))  # the firmware refuses more than 2000
        self.timeout = timeout
        self.retries = retries
        self.ttl = ttl
        self.enabled = enabled
        self.clock = clock
        self.sites = collections.OrderedDict()  # gw -> _Site (LRU order)
        self.sem = None
        self.concurrency = concurrency
        self.loop = None
        self.pending = {}  # gw -> asyncio.Queue of the fetch under way
        self.requests = 0  # logs commands sent
        self.dropped = 0  # messages on .../logs nobody waited for

    def topics(self):
        return [self.prefix + "/+/logs"]

    def bind(self, loop):
        self.loop = loop
        self.sem = asyncio.Semaphore(self.concurrency)

    # ------------------------------------------------------------ network thread
    def on_message(self, topic, payload):
        """A message on <prefix>/<gw>/logs (paho's thread)."""
        gw = topic[len(self.prefix) + 1:].rsplit("/", 1)[0]
        q = self.pending.get(gw)
        if q is None or self.loop is None:
            self.dropped += 1
            return
        self.loop.call_soon_threadsafe(q.put_nowait, bytes(payload))

    # ------------------------------------------------------------ fetching
    def _site(self, gw):
        s = self.sites.get(gw)
        if s is None:
            while len(self.sites) >= self.max_sites:
                self.sites.popitem(last=False)
            s = self.sites[gw] = _Site()
        self.sites.move_to_end(gw)
        return s

    async def get(self, gw, span="day", ask=True):
        """The charts' data for one site and span; fetches what is new first
        when the cache is older than ttl (a fetch under way is waited for).
        ask=False (the gateway is offline): the cache only, and why."""
        site = self._site(gw)
        if self.enabled and not ask:
            if site.fetched_at is None or time.monotonic() - site.fetched_at > self.ttl:
                site.error = "%s is offline: showing what was fetched before" % gw if site.records else \
                    "%s is offline: its log can be fetched when it is back" % gw
        elif self.enabled:
            async with site.lock:
                if site.fetched_at is None or time.monotonic() - site.fetched_at > self.ttl:
                    async with self.sem:
                        await self._fetch(gw, site)
        return self.series(gw, site, span)

    async def _fetch(self, gw, site):
        q = asyncio.Queue()
        self.pending[gw] = q
        new_events = []
        try:
            site.error = None
            seq = site.last_seq + 1 if site.last_seq >= 0 else 0
            tries = 0
            got_total = 0
            while got_total < MAX_RECORDS:
                rid = uuid.uuid4().hex[:12]
                self.requests += 1
                self.publish("%s/%s/cmd" % (self.prefix, gw),
                             json.dumps({"cmd": "logs", "from_seq": seq, "max": self.batch, "id": rid}), 1)
                kind, got, info = await self._collect(q, site, rid, new_events)
                got_total += got
                if kind == "error":
                    site.error = "gateway %s: %s" % (gw, info)
                    break
                if kind == "done":
                    if got >= self.batch or (isinstance(info, int) and info >= self.batch):
                        seq, tries = site.last_seq + 1, 0
                        continue
                    break
                if kind == "batch":
                    nxt = info.get("next_seq")
                    if not info.get("more") or not isinstance(nxt, int) or nxt <= seq:
                        break
                    seq, tries = nxt, 0
                    continue
                # timeout
                if got:
                    seq, tries = site.last_seq + 1, 0
                    continue
                tries += 1
                if tries > self.retries:
                    site.error = "no reply from %s to the logs command within %g s (%d tries)" % (
                        gw, self.timeout, tries)
                    break
        finally:
            self.pending.pop(gw, None)
        now = self.clock()
        for s in site.series.values():
            s.trim(now - KEEP_S)
        site.fetched_at = time.monotonic()
        site.fetched_unix = now
        if new_events:
            site.events = (site.events + new_events)[-200:]
            if self.on_events is not None:
                self.on_events(gw, new_events)

    async def _collect(self, q, site, rid, new_events):
        """Until the answer ends: ("done", n, count) | ("batch", n, reply) |
        ("error", n, why) | ("timeout", n, None); n = records taken."""
        got = 0
        while True:
            try:
                payload = await asyncio.wait_for(q.get(), self.timeout)  # idle timeout: each record renews it
            except asyncio.TimeoutError:
                return "timeout", got, None
            if payload[:1] == bytes([cmd_logs.BATCH_MAGIC]):
                for seq, rtype, body in cmd_logs.log_message_records(payload):
                    got += self._take(site, seq, rtype, body, None, new_events)
                continue
            try:
                obj = json.loads(payload.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue
            if not isinstance(obj, dict):
                continue
            if obj.get("id") not in (None, rid):
                continue  # an answer to someone else's request
            if "error" in obj:
                return "error", got, obj["error"]
            if isinstance(obj.get("records"), list):
                for r in obj["records"]:
                    if isinstance(r, dict) and isinstance(r.get("seq"), int):
                        got += self._take(site, r["seq"], None, None, r, new_events)
                return "batch", got, obj
            if obj.get("done"):
                return "done", got, obj.get("count")
            seq = obj.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool):
                if isinstance(obj.get("hex"), str) and isinstance(obj.get("type"), int):
                    try:
                        body = bytes.fromhex(obj["hex"])
                    except ValueError:
                        continue
                    got += self._take(site, seq, obj["type"], body, None, new_events)
                else:
                    got += self._take(site, seq, None, None, obj, new_events)

    def _take(self, site, seq, rtype, body, obj, new_events):
        if seq <= site.last_seq:
            return 0  # seen (a repeated answer, a QoS 1 redelivery)
        site.last_seq = seq
        site.records += 1
        if obj is not None:
            if "rule" in obj and "event" in obj:
                new_events.append(obj)
                return 1
            recs = [cmd_logs.normalize(obj)]
        else:
            recs = site.decoder.feed(seq, rtype, body)
        for r in recs:
            dev, t = r.get("device"), r.get("t")
            if isinstance(dev, str) and isinstance(t, (int, float)) and not isinstance(t, bool):
                s = site.series.get(dev)
                if s is None:
                    s = site.series[dev] = _Series()
                s.add(float(t), r)
            elif "rule" in r and "event" in r:
                new_events.append(r)
        return 1

    # ------------------------------------------------------------ shaping
    def series(self, gw, site, span):
        span_s = SPANS.get(span, SPANS["day"])
        now = self.clock()
        t_from = now - span_s
        bucket = max(60.0, span_s / POINTS)
        devices = {}
        used = set()
        for dev, s in site.series.items():
            out = _downsample(s, t_from, bucket)
            if out is not None:
                devices[dev] = out
                used.update(k for k in out if k != "t")
        return {"gateway": gw, "span": span, "from": t_from, "to": now, "bucket_s": bucket,
                "fetched_at": site.fetched_unix, "records": site.records, "error": site.error,
                "history_off": not self.enabled, "fields": {f: field_meta(f) for f in sorted(used)},
                "devices": devices}

    def stats(self):
        return {"sites_cached": len(self.sites), "requests": self.requests, "dropped": self.dropped,
                "minutes_cached": sum(len(s.t) for site in self.sites.values() for s in site.series.values())}


def _downsample(s, t_from, bucket):
    """Averages per bucket of the points at or after t_from, rounded to each
    field's decimals; None when nothing is in range."""
    import bisect

    i0 = bisect.bisect_left(s.t, t_from)
    if i0 >= len(s.t):
        return None
    dec = {f: field_meta(f)["decimals"] for f in s.fields}
    ts = []
    cols = {f: [] for f in s.fields}
    i = i0
    n = len(s.t)
    while i < n:
        b = int((s.t[i] - t_from) // bucket)
        j = i
        end = t_from + (b + 1) * bucket
        while j < n and s.t[j] < end:
            j += 1
        ts.append(round(sum(s.t[i:j]) / (j - i)))
        for f, col in s.fields.items():
            vals = [v for v in col[i:j] if v == v]
            cols[f].append(round(sum(vals) / len(vals), dec[f]) if vals else None)
        i = j
    out = {"t": ts}
    for f, vals in cols.items():
        if any(v is not None for v in vals):
            out[f] = vals
    return out
