# The gateway's core: decoded readings in, MQTT messages and log records out.
#
# No I/O and no asyncio here: the app (firmware/app.py) feeds it bytes and
# adverts from the drivers and calls tick() once a second; it answers with
# messages in a bounded outbox (drained by the uplink task) and records in
# the flash log (replayed by the uplink). Time is passed in, so tests and the
# 24-hour soak run it in simulated time on both runtimes.
#
#   UART bytes -> vedirect.Parser -> vedirect_block() -+-> state (report by exception)
#   BLE advert -> ble_readout.Tracker -> ble_advert() -+-> alarm engine -> events
#                                                      +-> per-minute aggregates -> flash log
#
# Topics (prefix "vegw"):
#   <prefix>/<gw>/<device>/state   retained JSON: latest values (SI units, names
#                                  as `vegw decode`), plus "ts" (unix s)
#   <prefix>/<gw>/log              QoS 1, from the flash log: {"seq","ts","type",...}
#   <prefix>/<gw>/event            QoS 1, from the flash log: alarm events with seq
#   <prefix>/<gw>/status           JSON: uptime, heap, link, counters, firmware
#   <prefix>/<gw>/availability     retained online/offline (last will)
#   <prefix>/<gw>/<device>/availability  retained online/offline: offline while
#                                  the device is stale, or never heard within its
#                                  stale timeout after boot (HA shows unavailable)
#   <prefix>/<gw>/cmd              commands in (allow-list below)
#
# Length: the coordinator of one device table: inputs, reporting by
# exception, HA discovery pacing and status read and write the same
# per-device state and clocks. The parts that stand alone are modules of
# their own: device_state.py (a device, message JSON), log_windows.py (the
# 1-minute history), outbox.py, commands.py, reporter.py.

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


import commands
import field_names
import records
from outbox import Outbox  # noqa: F401 - gateway.Outbox for its users
import reporter
from log_windows import LogWindows
from device_state import Device  # noqa: F401 - gateway.Device for its users
from device_state import compact as _json, num_text as _num_text, state_json as _state_json, tidy as _tidy
import vedirect_fields as VF

field_names.register("rssi", "dBm", "signal_strength", "m")

VERSION = "0.1.0"

_MAX_CHANGED = const(40)  # fields tracked per block for change detection
_MIN_STATE_GAP_MS = const(1000)  # at most one state message per device per second
_DERIVE_EVERY_S = const(10)  # derived metrics recomputed (they move slowly)
_REANNOUNCE_S = const(600)  # HA's "online" re-sends discovery at most this often

# Flash-log record types. Per-interval aggregates of every device go in the
# compact binary blocks of records.py (T_KEY / T_DELTA: ~33 B a minute for a
# whole site, so 1.5 MB holds 30+ days); alarm events as small JSON.
REC_EVENT = const(2)  # alarm event (JSON)


def product_name(pid):
    """Product name for a PID, or None. The names are tables in
    vedirect_text (~4 KB of heap, bench/bench_ondemand.py): loaded for the
    call and dropped again on MicroPython (asked once per device)."""
    import sys

    had = "ve_enums" in sys.modules
    import vedirect_text

    try:
        return vedirect_text.product_name(pid)
    finally:
        if sys.implementation.name == "micropython":
            sys.modules.pop("vedirect_text", None)
            if not had:
                sys.modules.pop("ve_enums", None)

class Gateway:
    def __init__(self, cfg, outbox=None, flashlog=None, engine=None, tracker=None, metrics=None):
        self.cfg = cfg
        g = cfg.get("gateway", {})
        m = cfg.get("mqtt", {})
        self.gw = g.get("id", "vegw")
        self.prefix = m.get("prefix") or "vegw"
        self.base = self.prefix + "/" + self.gw + "/"
        # "bridge": `vegw bridge` publishes the HA configs for this gateway
        self.discovery = m.get("discovery", True) is True
        # thin uplink (cellular): state only on a change that matters and the
        # heartbeat, status as deltas; the 1-minute history goes as binary
        # log batches (app.py, logpack.py) that a bridge expands
        self.thin = m.get("uplink") == "thin"
        self._status_sig = None  # thin: top-level status key -> hash of its JSON as last sent
        self.discovery_prefix = m.get("discovery_prefix") or "homeassistant"
        self.heartbeat_s = m.get("heartbeat") or 300
        gap = m.get("min_interval")
        gap_ms = _MIN_STATE_GAP_MS if gap is None else max(gap * 1000, _MIN_STATE_GAP_MS)
        # aligned: every device's change publishes fall in the same second,
        # so they share TCP segments (bytes per day on cellular)
        # copy=False: the reporter keeps the published dict itself (the one
        # copy of a device's last published values; _pub() reads it)
        self.reporter = reporter.Reporter(self.heartbeat_s, min_interval_ms=gap_ms, aligned=gap_ms > _MIN_STATE_GAP_MS,
                                          copy=False)
        self.per_value = bool(m.get("per_value_topics"))
        self.hold_s = gap_ms // 1000  # a device's state at most this often (changes)
        self._t0 = None  # time origin of the reporter's millisecond clock
        self.discovery_pending = []  # device names whose HA configs are due
        alarms = cfg.get("alarms", {})
        stale = alarms.get("stale_timeout") or 60
        self.out = outbox or Outbox()
        self.log = flashlog
        self.engine = engine
        self.tracker = tracker
        self.metrics = metrics  # metrics.MetricSet or None
        self.devices = {}
        self._by_mac = {}
        for d in cfg.get("devices", ()):
            dev = Device(d["name"], d["type"], d.get("stale_timeout") or stale)
            if d.get("capacity_ah") and metrics is not None:
                metrics.capacity[d["name"]] = d["capacity_ah"]
            self.devices[d["name"]] = dev
            if engine is not None:
                engine.add_device(d["name"])  # stale alarm even if never heard
            if d["type"] == "ble":
                dev.mac = d["mac"].upper()
                self._by_mac[dev.mac] = dev
        self._gw_announce = False
        self._announced = False  # discovery sent since boot
        self._reannounced_s = None  # last re-send of discovery on HA's "online"
        self.started_s = None
        # False while the board's clock is unset after power-on (the app says
        # so): no "ts" goes out then, never a date in 2000 (timefix.py)
        self.clock_ok = True
        self.reboot_requested = False
        self.counters = {"blocks": 0, "adverts": 0, "adverts_ignored": 0, "records": 0,
                         "events": 0, "commands": 0, "commands_refused": 0, "state_msgs": 0}
        self.status_extra = None  # callable -> dict merged into status (app: heap, link)
        # the 1-minute history into the flash log
        self.windows = LogWindows(flashlog, cfg.get("log", {}).get("interval") or 60, self.counters)

    # ------------------------------------------------------------ inputs
    def vedirect_block(self, name, block, now_s):
        dev = self.devices.get(name)
        if dev is None:
            return
        before = len(dev.raw)
        VF.update(block, dev.raw, self.counters)  # counts labels_dropped
        self.counters["blocks"] += 1
        if dev.ident_serial is None:
            ser = dev.raw.get("SER#")
            if ser is not None:
                dev.ident_serial = VF.to_si("SER#", ser)
        if dev.model is None and dev.raw.get("PID") is not None:
            dev.model = product_name(dev.raw["PID"])
        # this block's fields in SI units, for the alarm engine and the
        # per-minute aggregates (other fields keep their values there)
        si = {}
        for i in range(block.count):
            k = block.entry(i)
            if k < 0:
                continue
            f = VF.NAMES[k]
            v = VF.to_si(f, dev.raw.get(f))
            si[f] = v
        self._reading(dev, si, now_s, len(dev.raw) != before)

    def ble_advert(self, mac, data, rssi, now_s):
        """mac: 6 bytes; data: manufacturer data (with or without e1 02)."""
        if self.tracker is None:
            return
        st = self.tracker.feed(bytes(mac), data)
        if self.tracker.notice:
            self.notice(self.tracker.notice)
        if st != "ok":
            self.counters["adverts_ignored"] += 1
            return
        self.counters["adverts"] += 1
        text = ":".join("%02X" % b for b in mac)
        dev = self._by_mac.get(text)
        if dev is None:
            return
        vals = self.tracker.values()
        if vals is None:  # out of range: a wrong key whose first byte matched
            if self.tracker.notice:
                self.notice(self.tracker.notice)
            self.counters["adverts"] -= 1
            self.counters["adverts_ignored"] += 1
            return
        if dev.model is None:
            try:
                dev.model = product_name(self.tracker.decoder.model_id)
            except Exception:
                dev.model = None
        before = len(dev.raw)
        for k in vals:
            dev.raw[k] = vals[k]
        if rssi is not None:
            dev.raw["rssi"] = rssi
        self._reading(dev, vals, now_s, len(dev.raw) != before)

    def _reading(self, dev, si, now_s, new_fields):
        if self.started_s is None:
            self.started_s = now_s
        self.windows.roll(now_s, self.devices.values())  # a reading of a new window closes the old one first
        dev.last_s = now_s
        dev.readings += 1
        if dev.online is not True:
            self._availability(dev, True)
        if self.engine is not None:
            self.engine.update(dev.name, si, now_s)
            self.drain_events(now_s)
        if self.metrics is not None:
            self.metrics.update(dev.name, si, int(now_s))
        # aggregate for the flash log
        agg = dev.agg
        for f in si:
            agg.add(f, si[f])
        # report by exception (deadbands and heartbeat: reporter.py). The
        # full value dict is built only when a field of this reading moved
        # beyond its deadband (or is new): most readings cost a few compares.
        if not dev.dirty and (new_fields or dev.pub_s is None or self._moved(dev, si)):
            dev.dirty = True
        if dev.dirty and (dev.pub_s is None or now_s - dev.pub_s >= self.hold_s):
            self._report(dev, now_s)

    def _pub(self, dev):
        """The values of the device's last state publish (kept once, by the
        reporter)."""
        return self.reporter.last(dev.name) or {}

    def _matters(self, dev, f):
        """Thin uplink: does a change of this field justify a state message?
        States, enums and flags do, and fields an alarm rule reads; analog
        values travel in the 1-minute log instead."""
        kind = records.res(f)[1]
        if kind != records.KIND_ANALOG and kind != records.KIND_LAST:
            return True
        return self.engine is not None and self.engine.reads(dev.name, f)

    def _moved(self, dev, si):
        pub = self._pub(dev)
        rep = self.reporter
        for f in si:
            if self.thin and not self._matters(dev, f):
                continue
            old = pub.get(f, pub)
            if old is pub:
                return True
            v = si[f]
            if old != v and rep.moved(dev.name, f, old, v):
                return True
        return False

    def _ms(self, now_s):
        if self._t0 is None:
            self._t0 = now_s
        return int((now_s - self._t0) * 1000) & 0x3FFFFFFF

    def _report(self, dev, now_s):
        vals = dev.values()
        old = self._pub(dev)
        if self.reporter.check(dev.name, vals, self._ms(now_s)) is not None:
            dev.dirty = False
            self._publish_state(dev, now_s, vals, old)

    # ------------------------------------------------------------ outputs
    def _publish_state(self, dev, now_s, vals, old):
        dev.pub_s = now_s
        payload = dict(vals)
        if self.clock_ok:
            payload["ts"] = int(now_s)
        self.out.put(self.base + dev.name + "/state", _state_json(payload), 0, True)
        if self.per_value:  # option: one retained topic per value, changed ones only
            for f in vals:
                if old.get(f, old) != vals[f]:
                    v = vals[f]
                    self.out.put(self.base + dev.name + "/" + f,
                                 _num_text(v).encode() if type(v) is float else _json(v), 0, True)
        self.counters["state_msgs"] += 1
        if self.discovery and len(vals) > dev.announced and dev.name not in self.discovery_pending:
            self.discovery_pending.append(dev.name)

    def discovery_configs(self):
        """Yield (topic, payload) of the HA discovery configs that are
        due, one at a time: the uplink publishes them as it has room, so a
        device with 40 fields never floods the outbox."""
        import sys

        had_enums = "ve_enums" in sys.modules  # ha_discovery's enum texts: dropped again too
        import ha_discovery  # loaded while configs are due, then dropped (RAM)

        # A device (or the gateway) counts as announced only once its last
        # config was taken: a generator dropped half way (the link went down)
        # leaves it due, and the next one sends it again from the start.
        if self._gw_announce:
            for topic, cfg in ha_discovery.gateway_configs(self.gw, prefix=self.prefix,
                                                           discovery_prefix=self.discovery_prefix,
                                                           sw_version=VERSION):
                yield topic, _json(cfg)
            self._gw_announce = False
        while self.discovery_pending:
            name = self.discovery_pending[0]
            dev = self.devices[name]
            vals = self._pub(dev)
            # payload: bytes, or for an enum a tuple of short pieces (mqtt_async)
            for topic, payload in ha_discovery.iter_payloads(
                    self.gw, dev.name, list(vals), serial=dev.ident_serial, mac=dev.mac, model=dev.model,
                    prefix=self.prefix, discovery_prefix=self.discovery_prefix):
                yield topic, payload
            dev.announced = len(vals)
            if self.discovery_pending and self.discovery_pending[0] == name:
                self.discovery_pending.pop(0)
        del ha_discovery
        sys.modules.pop("ha_discovery", None)
        if not had_enums:
            sys.modules.pop("ve_enums", None)

    def discovery_due(self):
        """HA discovery configs wait to be sent (the uplink asks between
        live messages)."""
        return bool(self.discovery_pending) or self._gw_announce

    def announce_gateway(self, again=False, now_s=None):
        """HA discovery for the gateway and every device: call after each
        connect. The configs are retained, so a reconnect does not send them
        again (~60 KB for a 3-device site: on a flaky cellular link that
        would dominate the day's bytes); again=True (Home Assistant's birth
        message, <discovery_prefix>/status "online": HA or the broker
        restarted and may have lost them) does."""
        for dev in self.devices.values():
            # each device's availability again after a connect (a broker
            # restarted without persistence forgot the retained ones, and HA
            # needs them all): offline ones at the next tick, online ones at
            # their next reading
            dev.online = None
        if not self.discovery or (self._announced and not again):
            return
        if again and now_s is not None:
            # anyone who may publish "online" on <discovery_prefix>/status
            # could make the gateway send its whole discovery set (~60 KB)
            # again and again: at most once every _REANNOUNCE_S
            last = self._reannounced_s
            if last is not None and 0 <= now_s - last < _REANNOUNCE_S:
                self.counters["reannounce_limited"] = self.counters.get("reannounce_limited", 0) + 1
                return
            self._reannounced_s = now_s
        self._announced = True
        self._gw_announce = True
        for dev in self.devices.values():
            dev.announced = 0
            if dev.pub_s is not None and dev.name not in self.discovery_pending:
                self.discovery_pending.append(dev.name)

    def _availability(self, dev, online):
        dev.online = online
        self.out.put(self.base + dev.name + "/availability", b"online" if online else b"offline", 0, True)

    def notice(self, text):
        self.out.put(self.base + "status/notice", _json({"notice": text}), 0, False)

    def drain_events(self, now_s):
        for ev in self.engine.events():
            self.counters["events"] += 1
            self.append_log(REC_EVENT, ev, now_s, flush=True)

    def append_log(self, rtype, obj, now_s, flush=False):
        """Append a record to the flash log; the uplink publishes it from
        there (live or, after an outage, as backlog), so every record reaches
        the broker in order and carries its sequence number."""
        if self.log is None:
            return 0
        rec = dict(obj)
        rec["ts"] = now_s
        seq = self.log.append(rtype, _json(rec))
        self.counters["records"] += 1
        if flush:
            self.log.flush()
        return seq

    def clock_set(self, delta, now_s, from_seq=None):
        """The board's clock was set and jumped by delta s (timefix.py): times
        held on the unset clock move with it, the open minute block closes
        (no delta chain spans the jump) and the jump goes into the log for
        readers of the raw flash. from_seq: first log seq of this boot."""
        from timefix import REC_CLOCK, shift

        for dev in self.devices.values():
            dev.last_s = shift(dev.last_s, delta)
            dev.pub_s = shift(dev.pub_s, delta)
        self.started_s = shift(self.started_s, delta)
        self._reannounced_s = shift(self._reannounced_s, delta)
        self._t0 = shift(self._t0, delta)
        self.windows.clock_set(delta, now_s, self.devices.values(), shift)
        if self.engine is not None:
            self.engine.clock_set(delta)
        if self.metrics is not None:
            self.metrics.clock_set(delta)
        self.clock_ok = True
        if self.log is not None:
            self.log.append(REC_CLOCK, _json({"delta": delta, "from_seq": from_seq, "ts": int(now_s)}))
            self.log.flush()

    # ------------------------------------------------------------ time
    def tick(self, now_s):
        """Call once a second: timers, heartbeats, stale devices, logging."""
        if self.started_s is None:
            self.started_s = now_s
        if self.engine is not None:
            self.engine.tick(now_s)
            self.drain_events(now_s)
        derive = self.metrics is not None and int(now_s) % _DERIVE_EVERY_S == 0
        for dev in self.devices.values():
            if dev.last_s is None:
                # configured but never heard: unavailable once its timeout
                # since boot has passed (the alarm engine raises stale then)
                if dev.online is not False and now_s - self.started_s >= dev.stale_s:
                    self._availability(dev, False)
                continue
            if now_s - dev.last_s >= dev.stale_s:
                if dev.online is not False:
                    self._availability(dev, False)
                continue  # stale: no heartbeat of frozen values
            if derive:
                d = self.metrics.values(dev.name, int(now_s))
                if d:
                    d = _tidy(d)
                    if not dev.dirty and dev.derived is not None and self._moved(dev, d):
                        dev.dirty = True
                    dev.derived = d
                    if self.engine is not None:
                        self.engine.update(dev.name, d, now_s)
            age = now_s - dev.pub_s if dev.pub_s is not None else None
            if age is None or age >= self.heartbeat_s or (dev.dirty and age >= self.hold_s):
                self._report(dev, now_s)
        if derive and self.engine is not None:
            self.drain_events(now_s)
        self.windows.roll(now_s, self.devices.values())

    def close(self, now_s):
        """Clean shutdown: the open window and block go to flash."""
        self.windows.close(self.devices.values())

    @property
    def log_interval(self):  # seconds per log window (the log_interval command sets it)
        return self.windows.interval

    @log_interval.setter
    def log_interval(self, s):
        self.windows.interval = s

    # ------------------------------------------------------------ status
    def status(self, now_s):
        # heartbeat_s: a fresh device's state comes at least this often (a
        # monitor must not call a quiet device stale before it has passed)
        st = {"fw": VERSION, "uptime_s": int(now_s - (self.started_s or now_s)), "heartbeat_s": self.heartbeat_s}
        if self.clock_ok:
            st["ts"] = int(now_s)
        st.update(self.counters)
        st["outbox_dropped"] = self.out.dropped
        st["devices"] = {}
        for d in self.devices.values():
            st["devices"][d.name] = {
                "readings": d.readings,
                "age_s": None if d.last_s is None else int(now_s - d.last_s),
                "stale": d.last_s is None or now_s - d.last_s >= d.stale_s,
            }
        st["reporter"] = self.reporter.counters()
        if self.engine is not None:
            st["alarms_active"] = self.engine.active()
        if self.log is not None:
            s = self.log.stats()
            st["log"] = {"unsent": s.get("unsent"), "torn": s.get("torn"),
                         "overwritten_unsent": s.get("overwritten_unsent"),
                         "interval_s": self.windows.interval,
                        "history_days": self.windows.history_days(now_s)}
        if self.status_extra is not None:
            try:
                st.update(self.status_extra())
            except Exception:
                pass
        return st

    def publish_status(self, now_s, full=False):
        # retained: a NOC view (vegw monitor) sees the last status at once.
        # Thin uplink: the whole status at connect (full=True) and on the
        # status command, otherwise only the top-level keys whose value
        # changed, on .../status/delta (vegw bridge merges them into .../status)
        st = self.status(now_s)
        if not self.thin:
            self.out.put(self.base + "status", _json(st), 0, True)
            return
        sig = {}
        delta = {}
        old = self._status_sig
        for k in st:
            h = hash(_json(st[k]))
            sig[k] = h
            if old is None or old.get(k) != h:
                delta[k] = st[k]
        self._status_sig = sig
        if full or old is None:
            self.out.put(self.base + "status", _json(st), 0, True)
        else:
            self.out.put(self.base + "status/delta", _json(delta), 0, False)

    # ------------------------------------------------------------ commands
    def command(self, payload, now_s):
        """A message on <prefix>/<gw>/cmd (commands.py); what the app must
        serve (it needs I/O) comes back, else None. commands.py is
        imported with this module: dropping it between commands would free
        ~0.6 KB (64-bit, bench/bench_ondemand.py), below what a drop must pay."""
        return commands.handle(self, payload, now_s)

    def reply(self, obj):
        self.out.put(self.base + "cmd/reply", _json(obj), 0, False)
