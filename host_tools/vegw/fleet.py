"""The fleet as the broker tells it: one model for `vegw monitor` (a row per
device) and `vegw dashboard` (a row per site, devices folded in).

Topics (prefix default "vegw"):
  <prefix>/+/+/state         JSON: the device's latest values (V, I, SOC, PPV, ...), optional ts, seq
  <prefix>/+/status          JSON: link, rssi_dbm, alarms_active, heartbeat_s, devices{age_s, stale}, ...
  <prefix>/+/status/delta    thin uplink: the status keys that changed (merged)
  <prefix>/+/availability    retained "online" / "offline" (the gateway's last will)
  <prefix>/+/event           JSON {"seq", "t", "rule", "event", "severity", ...}

Messages only update the model under a lock (paho's network thread);
readers (a redraw, a web request) copy what they need under it.

last_seen: the newer of the state's "ts" (unix seconds; else the time the
message arrived; a retained state without "ts" has an unknown age) and what
the gateway's status says of the device (`devices.NAME.age_s` at the status's
"ts"): a quiet device re-sends its state only every heartbeat, but the status
still tells how long ago the gateway last heard it.

A device is stale when its gateway is "offline", when the gateway's latest
status (newer than the device's state) calls it stale, or when last_seen is
unknown or older than the stale limit (default: twice the heartbeat the
gateway declares in its status, `heartbeat_s`; 600 s if it declares none).
A device the gateway's status lists but that never reported (no state,
`age_s` null) is kept too: last_seen null, never_heard true, stale.

Transitions worth an alert (alarm raised/cleared, gateway offline/back) are
passed to `on_transition(dict)` outside the lock, only for live messages:
what a retained message replays at subscribe time is the past, not news.
"""
# The reading side (rows, sites, staleness, sorting) is fleet_views.py.
# Length: a third of it is the topics and rules above; the rest is one
# handler per topic kind on one locked model.
import collections
import json
import threading
import time

from .fleet_views import _DEFAULT_HEARTBEAT, SEVERITIES, SORT_KEYS, FleetViews, _num, sort_key  # noqa: F401

_MAX_ROWS = 200000  # gateway+device pairs tracked; beyond this new pairs are dropped (counted)
_MAX_GATEWAYS = 100000  # gateways tracked (each costs ~1 KB); beyond this new ones are dropped (counted)
_MAX_HISTORY = 40  # alarm raise/clear entries kept per gateway
_MAX_SEQS = 256  # recent event seqs remembered per gateway (QoS 1 repeats, log replays)
_MAX_ALARMS = 64  # active alarms kept per gateway (a status listing more is cut, counted)

# event names that raise / clear an alarm (the alarm engine's vocabulary plus common synonyms)
_RAISE = ("raise", "raised", "alarm", "active", "set", "on", "trigger", "triggered", "warning")
_CLEAR = ("clear", "cleared", "ok", "off", "resolved", "reset", "end")


# a site's state, worst first: the dashboard's default order puts trouble on top
SITE_STATES = ("offline", "alarm", "stale", "warning", "ok")


def builtin_severity(name):
    """Severity of an alarm known only by name (a status's alarms_active):
    the engine's built-ins say theirs in the name, rules default to alarm."""
    if name.startswith(("stale:", "device_warning:")):
        return "warning"
    return "alarm"


class Device:
    __slots__ = ("soc", "voltage", "current", "pv", "seen_state", "seen_status", "stale_by_status", "status_at",
                 "state_at", "fields")

    def __init__(self):
        self.soc = self.voltage = self.current = self.pv = None
        self.seen_state = None  # the state's ts (or arrival time); None: unknown
        self.seen_status = None  # when the gateway's status says it last heard the device
        self.stale_by_status = False
        self.status_at = None  # time of the status that said so
        self.state_at = None  # time of the latest state (arrival when it had no ts)
        self.fields = None  # the latest state as published (dict)


class Gateway:
    __slots__ = ("availability", "avail_since", "link", "rssi", "fw", "heartbeat", "alarms", "history", "status",
                 "status_at", "seen_seqs", "rule_t", "devices")

    def __init__(self):
        self.availability = None
        self.avail_since = None  # when it changed while we listened; None: before we started
        self.link = None
        self.rssi = None
        self.fw = None
        self.heartbeat = None
        self.alarms = {}  # active: name -> [severity, since (unix s or None), acknowledged]
        self.history = collections.deque(maxlen=_MAX_HISTORY)  # [rule, severity, raised_t, cleared_t]
        self.status = None  # the latest status (dict), merged with deltas
        self.status_at = None
        self.seen_seqs = collections.deque(maxlen=_MAX_SEQS)  # recent event seqs: a repeat is not news twice
        self.rule_t = {}  # rule -> time of the latest event applied (a late replay does not undo a newer one)
        self.devices = []  # device names in the order first heard


class Fleet(FleetViews):
    """What the broker told us, keyed by gateway and (gateway, device)."""

    def __init__(self, prefix="vegw", stale_s=None, clock=time.time, on_transition=None):
        self.prefix = prefix.rstrip("/") + "/"
        self.stale_s = stale_s  # None: twice each gateway's declared heartbeat
        self.clock = clock
        self.on_transition = on_transition
        self.lock = threading.Lock()
        self.devices = {}  # (gw, dev) -> Device
        self.gateways = {}  # gw -> Gateway
        self.messages = 0
        self.bad = 0  # payloads that were not what the topic promises
        self.dropped = 0  # new pairs or gateways refused beyond the limits
        self.version = 0  # bumps on every change: the redraw loop skips idle frames
        self.dirty = set()  # gateways changed since take_dirty()

    def topics(self):
        p = self.prefix
        return [p + "+/+/state", p + "+/status", p + "+/status/delta", p + "+/availability", p + "+/event"]

    # ------------------------------------------------------------ feeding
    def _gw(self, gw):
        g = self.gateways.get(gw)
        if g is None:
            if len(self.gateways) >= _MAX_GATEWAYS:
                self.dropped += 1
                return None
            g = self.gateways[gw] = Gateway()
        return g

    def _dev(self, gw, dev):
        key = (gw, dev)
        row = self.devices.get(key)
        if row is None:
            if len(self.devices) >= _MAX_ROWS:
                self.dropped += 1
                return None
            g = self._gw(gw)
            if g is None:
                return None
            row = self.devices[key] = Device()
            g.devices.append(dev)
        return row

    def handle(self, topic, payload, retained=False, now=None):
        """Feed one message. Never raises on bad input."""
        now = self.clock() if now is None else now
        self.messages += 1
        if not topic.startswith(self.prefix):
            return
        parts = topic[len(self.prefix):].split("/")
        if len(parts) < 2:
            return
        try:
            text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else str(payload)
        except UnicodeDecodeError:
            self.bad += 1
            return
        news = []
        with self.lock:
            self.version += 1
            gw = parts[0]
            if len(parts) == 3 and parts[2] == "state":
                self._state(gw, parts[1], text, retained, now)
            elif len(parts) == 2 and parts[1] == "availability":
                self._availability(gw, text, retained, now, news)
            elif len(parts) == 2 and parts[1] == "status" or parts[1:] == ["status", "delta"]:
                d = self._json(text)
                if d is not None:
                    self._status(gw, d, retained, now, partial=len(parts) == 3)
            elif len(parts) == 2 and parts[1] == "event":
                d = self._json(text)
                if d is not None:
                    self._event(gw, d, retained, now, news)
            else:
                return
            if gw in self.gateways:  # not one refused beyond the limit: the set stays bounded
                self.dirty.add(gw)
        if self.on_transition is not None:
            for n in news:
                try:
                    self.on_transition(n)
                except Exception:  # noqa: BLE001 - an alert sink must not stop the model
                    pass

    def _json(self, text):
        try:
            d = json.loads(text)
        except ValueError:
            d = None
        if not isinstance(d, dict):
            self.bad += 1
            return None
        return d

    def _availability(self, gw, text, retained, now, news):
        g = self._gw(gw)
        if g is None:
            return
        new = text.strip().lower() or None
        old = g.availability
        if new != old:
            g.availability = new
            g.avail_since = None if retained else now
            if not retained and new in ("online", "offline") and (old is not None or new == "offline"):
                news.append({"kind": new, "gateway": gw, "t": now})

    def _status(self, gw, d, retained, now, partial):
        g = self._gw(gw)
        if g is None:
            return
        if partial and g.status is not None:
            merged = dict(g.status)
            merged.update(d)
            d = merged
        g.status = d
        g.status_at = _num(d.get("ts")) or (None if retained else now)
        if isinstance(d.get("link"), str):
            g.link = d["link"]
        if "rssi_dbm" in d or not partial:
            g.rssi = _num(d.get("rssi_dbm"))
        if isinstance(d.get("fw"), str):
            g.fw = d["fw"]
        act = d.get("alarms_active")
        if isinstance(act, list):  # the engine's own list beats counting events
            names = [str(a) for a in act][:_MAX_ALARMS]
            self.dropped += len(act) - len(names)
            old = g.alarms
            g.alarms = {n: old.get(n) or [builtin_severity(n), None, False] for n in names}
        hb = _num(d.get("heartbeat_s"))
        if hb is not None and hb > 0:
            g.heartbeat = hb
        self._status_devices(gw, d, retained, now)

    def _status_devices(self, gw, d, retained, now):
        """The gateway's own view of its devices: age of the last reading,
        stale flag, and devices that never reported."""
        devs = d.get("devices")
        if isinstance(devs, list):  # tolerate [{"name": ..., ...}]
            devs = {x.get("name"): x for x in devs if isinstance(x, dict) and isinstance(x.get("name"), str)}
        if not isinstance(devs, dict):
            return
        ts = _num(d.get("ts"))
        at = ts if ts is not None else (None if retained else now)
        for name, info in devs.items():
            if not isinstance(name, str) or not isinstance(info, dict):
                continue
            row = self._dev(gw, name)
            if row is None:
                continue
            age = _num(info.get("age_s"))
            if at is not None and age is not None:
                row.seen_status = at - age
            row.stale_by_status = info.get("stale") is True
            row.status_at = at

    def _event(self, gw, d, retained, now, news):
        g = self._gw(gw)
        if g is None:
            return
        seq = d.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            if seq in g.seen_seqs:
                return  # a repeat (QoS 1 redelivery, the log replayed again)
            g.seen_seqs.append(seq)
        ev = str(d.get("event", "")).lower()
        rule = str(d.get("rule", "?"))[:64]
        sev = d.get("severity")
        sev = sev if sev in SEVERITIES else builtin_severity(rule)
        t = _num(d.get("ts")) or _num(d.get("t")) or now
        latest = t >= g.rule_t.get(rule, t)  # events replayed late do not undo newer ones
        if latest and len(g.rule_t) < 4 * _MAX_ALARMS or rule in g.rule_t:
            g.rule_t[rule] = max(t, g.rule_t.get(rule, t))
        if ev in _RAISE:
            if latest and rule in g.alarms:
                g.alarms[rule][0] = sev
            elif latest and len(g.alarms) < _MAX_ALARMS:
                g.alarms[rule] = [sev, t, False]
            _record(g.history, rule, sev, True, t)
            kind = "alarm_raised"
        elif ev in _CLEAR:
            if latest:
                g.alarms.pop(rule, None)
            _record(g.history, rule, sev, False, t)
            kind = "alarm_cleared"
        elif ev in ("acknowledged", "ack"):
            if rule in g.alarms:
                g.alarms[rule][2] = True
            return
        else:
            return
        if not retained:
            news.append({"kind": kind, "gateway": gw, "rule": rule, "severity": sev, "t": t})

    def merge_alarm_history(self, gw, events):
        """Alarm events read back from a gateway's log (oldest first): they
        fill in raise/clear times from before we listened."""
        with self.lock:
            g = self.gateways.get(gw)
            if g is None:
                return
            known = {(h[0], h[2]) for h in g.history} | {(h[0], h[3]) for h in g.history}
            for e in events:
                rule, ev, t = str(e.get("rule", "?"))[:64], str(e.get("event", "")).lower(), _num(e.get("t"))
                sev = e.get("severity") if e.get("severity") in SEVERITIES else builtin_severity(rule)
                if t is None or (rule, t) in known or ev not in _RAISE + _CLEAR:
                    continue
                _record(g.history, rule, sev, ev in _RAISE, t)
                known.add((rule, t))
            self.version += 1
            self.dirty.add(gw)

    def _state(self, gw, dev, text, retained, now):
        d = self._json(text)
        if d is None:
            return
        row = self._dev(gw, dev)
        if row is None:
            return
        ts = _num(d.get("ts"))
        if ts is not None:
            row.seen_state = ts
        elif not retained:
            row.seen_state = now
        # else: retained, no ts: age unknown (keeps what we knew)
        row.state_at = row.seen_state if row.seen_state is not None else now
        # a state message is the device's whole latest state: missing -> null
        row.soc = _num(d.get("SOC"))
        row.voltage = _num(d.get("V"))
        row.current = _num(d.get("I"))
        row.pv = _num(d.get("PPV"))
        row.fields = d

    def take_dirty(self):
        """Gateways changed since the last call."""
        with self.lock:
            out, self.dirty = self.dirty, set()
        return out


def _when(h):
    return h[2] if h[2] is not None else h[3]


def _insert(history, entry):
    """Into a bounded deque kept in time order (a late replay lands in its place)."""
    t = _when(entry)
    if len(history) == history.maxlen:
        if _when(history[0]) > t:
            return  # older than everything kept
        history.popleft()
    i = len(history)
    while i and _when(history[i - 1]) > t:
        i -= 1
    history.insert(i, entry)


def _record(history, rule, sev, raised, t):
    """A raise opens an entry; a clear closes the rule's latest open one
    raised before it (or stands alone when we never saw the raise)."""
    if raised:
        _insert(history, [rule, sev, t, None])
        return
    for h in reversed(history):
        if h[0] == rule and h[3] is None and (h[2] is None or h[2] <= t):
            h[3] = t
            return
    _insert(history, [rule, sev, None, t])
