"""`vegw bridge`: expand the gateways' thin uplink for everyone else.

A long-running service beside the broker (docs/bridge.md). It takes the log
messages of every gateway (`<prefix>/+/log`: the thin uplink's binary batches
and the full uplink's {"seq","type","hex"}; `<prefix>/+/event`), decodes
them with the code of `vegw logs`, de-duplicates by gateway + seq, and

  - writes the 1-minute history as InfluxDB line protocol, timed by the
    records themselves: on stdout (Telegraf `execd`) and/or to InfluxDB's
    HTTP API (`--influx URL`, 1.x `/write`);
  - republishes, for gateways on the thin uplink: each device's state JSON
    (`<prefix>/<gw>/<device>/state`, the device's own contract: the newest
    minute's average/last values over the device's last full state), the
    alarm events (`<prefix>/<gw>/event`), the whole status (device deltas on
    `status/delta` merged into `<prefix>/<gw>/status`) and Home Assistant
    discovery (lib/ha_discovery.py) on the device's behalf.

Scale-out: instances with the same --group share the work through MQTT
shared subscriptions (`$share/<group>/<prefix>/+/log`); each keeps a
persistent session (clean_session false, client id from --group and
--instance), acknowledges a QoS 1 message only after its records are written
or safely in the shared state directory (--state-dir, bridge_store.py), so
an instance killed mid-stream gets its unacknowledged messages again when it
comes back, and the broker queues its share meanwhile.

Options come from flags or a JSON file (--config FILE: the long option names
with "_" for "-", e.g. {"broker": "mq:1883", "influx": "http://db:8086"});
flags win.
"""
# Length: one service loop (subscribe, decode, de-duplicate, write); its
# stores are bridge_store.py and bridge_influx.py.
import json
import os
import signal
import socket
import sys
import threading
import time

from . import LIB  # noqa: F401  (puts firmware/lib on sys.path)
from . import mqtt_link
from .bridge_influx import InfluxWriter, WriteError, points
from .bridge_store import Store
from .cmd_logs import log_message_records

PASSWORD_ENV_INFLUX = "VEGW_INFLUX_PASSWORD"
_DEFAULTS = {"broker": "127.0.0.1:1883", "prefix": "vegw", "group": "vegw-bridge", "instance": None,
             "state_dir": None, "influx": None, "influx_db": "vegw", "influx_user": None, "influx_password": None,
             "stdout": False, "discovery": True, "discovery_prefix": "homeassistant", "gap_timeout": 60.0,
             "retry": 5.0, "username": None, "password": None, "tls": False, "ca": None, "insecure": False}


def add_arguments(parser):
    parser.add_argument("--config", metavar="FILE", help="JSON file with these options (flags win)")
    mqtt_link.add_arguments(parser, default=None)
    parser.add_argument("--prefix", help="topic prefix (default vegw)")
    parser.add_argument("--group", help="shared-subscription group: instances with the same group share the "
                        "work (default vegw-bridge; 'none' = no shared subscription)")
    parser.add_argument("--instance", help="this instance's name, unique in its group (default: the host name); "
                        "with --group it makes the persistent MQTT session's client id")
    parser.add_argument("--state-dir", metavar="DIR", help="shared state: dedupe high-water marks, decoder context "
                        "(default ~/.local/state/vegw-bridge; the same directory for every instance)")
    parser.add_argument("--influx", metavar="URL", help="InfluxDB 1.x base URL, e.g. http://127.0.0.1:8086")
    parser.add_argument("--influx-db", help="database (default vegw; created if missing)")
    parser.add_argument("--influx-user")
    parser.add_argument("--influx-password", help="default: $%s" % PASSWORD_ENV_INFLUX)
    parser.add_argument("--stdout", action="store_true", default=None,
                        help="write line protocol on stdout (Telegraf execd input)")
    parser.add_argument("--no-discovery", dest="discovery", action="store_false", default=None,
                        help="do not publish Home Assistant discovery for thin gateways")
    parser.add_argument("--discovery-prefix", help="default homeassistant")
    parser.add_argument("--gap-timeout", type=float, metavar="S",
                        help="seconds to wait for a missing seq before stepping over it (default 60)")
    parser.add_argument("--retry", type=float, metavar="S", help="seconds between retries of waiting work (default 5)")


class BridgeError(Exception):
    pass


def options(args):
    """Flags over the --config file over the defaults -> a plain dict."""
    opts = dict(_DEFAULTS)
    if getattr(args, "config", None):
        try:
            with open(args.config) as f:
                conf = json.load(f)
        except (OSError, ValueError) as e:
            raise BridgeError("--config %s: %s" % (args.config, getattr(e, "strerror", None) or e))
        if not isinstance(conf, dict):
            raise BridgeError("--config %s: a JSON object expected" % args.config)
        for k, v in conf.items():
            k = k.replace("-", "_")
            if k not in _DEFAULTS:
                raise BridgeError("--config %s: unknown option %r" % (args.config, k))
            opts[k] = v
    for k in _DEFAULTS:
        v = getattr(args, k, None)
        if v is not None and v is not False:
            opts[k] = v
        elif k == "discovery" and v is False:
            opts[k] = False
    if not opts["instance"]:
        opts["instance"] = socket.gethostname()
    if not opts["state_dir"]:
        opts["state_dir"] = os.path.join(os.path.expanduser("~"), ".local", "state", "vegw-bridge")
    if not opts["influx"] and not opts["stdout"]:
        raise BridgeError("nowhere to write the history: give --influx URL and/or --stdout")
    opts["influx_password"] = opts["influx_password"] or os.environ.get(PASSWORD_ENV_INFLUX)
    return opts


def _log(msg):
    sys.stderr.write("vegw bridge: %s\n" % msg)
    sys.stderr.flush()


class Bridge:
    def __init__(self, opts, client=None):
        self.o = opts
        self.prefix = opts["prefix"].rstrip("/")
        self.store = Store(opts["state_dir"], gap_timeout=float(opts["gap_timeout"]))
        self.influx = None
        if opts["influx"]:
            self.influx = InfluxWriter(opts["influx"], opts["influx_db"], opts["influx_user"],
                                       opts["influx_password"])
        self.out = sys.stdout if opts["stdout"] else None
        self.c = client
        self.lock = threading.Lock()  # one message at a time (paho's thread and the retry timer)
        self.thin = set()  # gateways seen sending binary batches
        self.states = {}  # (gw, device) -> last full state dict seen on the state topic
        self.status = {}  # gw -> last full status dict
        self.announced = {}  # (gw, device) -> fields announced by HA discovery
        self.gw_announced = set()
        self.counters = {"messages": 0, "records": 0, "points": 0, "duplicates": 0, "write_errors": 0,
                         "bad_messages": 0, "states": 0, "events": 0, "discovery": 0}

    # ------------------------------------------------------------ topics
    def subscriptions(self):
        p = self.prefix
        g = self.o["group"]
        share = "" if not g or g == "none" else "$share/%s/" % g
        return [(share + p + "/+/log", 1), (share + p + "/+/event", 1), (share + p + "/+/status/delta", 0),
                (p + "/+/status", 0), (p + "/+/+/state", 0), (self.o["discovery_prefix"] + "/status", 0)]

    def on_connect(self, c):
        c.subscribe(self.subscriptions())

    # ------------------------------------------------------------ writing
    def _sink(self, gw):
        def sink(records):
            lines = points(gw, records)
            if self.influx is not None:
                self.influx.write(lines)  # raises WriteError: nothing advances, the message stays pending
            if self.out is not None and lines:
                self.out.write("\n".join(lines) + "\n")
                self.out.flush()
            self.counters["points"] += len(lines)
        return sink

    def handle(self, topic, payload):
        """One message; returns True when it may be acknowledged."""
        p = self.prefix + "/"
        if topic == self.o["discovery_prefix"] + "/status":
            if bytes(payload) == b"online":  # Home Assistant restarted: discovery again
                self.announced.clear()
                self.gw_announced.clear()
            return True
        if not topic.startswith(p):
            return True
        parts = topic[len(p):].split("/")
        gw = parts[0]
        rest = "/".join(parts[1:])
        if rest == "log":
            return self._log_message(gw, payload)
        if rest == "event":
            return self._event_message(gw, payload)
        if rest == "status":
            self._full_status(gw, payload)
        elif rest == "status/delta":
            self._status_delta(gw, payload)
        elif len(parts) == 3 and parts[2] == "state":
            try:
                st = json.loads(bytes(payload).decode())
            except (ValueError, UnicodeDecodeError):
                return True
            if isinstance(st, dict):
                old = self.states.get((gw, parts[1]))
                if old is None or (st.get("ts") or 0) >= (old.get("ts") or 0):
                    self.states[(gw, parts[1])] = st
        return True

    def _log_message(self, gw, payload):
        self.counters["messages"] += 1
        recs = log_message_records(payload)
        if not recs:
            self.counters["bad_messages"] += 1
            _log("%s: a log message that is neither a batch nor {seq,type,hex}: dropped" % gw)
            return True
        if bytes(payload[:1]) == b"\xb1":
            self.thin.add(gw)
        return self._process(gw, recs)

    def _event_message(self, gw, payload):
        try:
            obj = json.loads(bytes(payload).decode())
            seq = obj.pop("seq")
            if not isinstance(seq, int):
                raise ValueError
        except (ValueError, UnicodeDecodeError, AttributeError, KeyError):
            self.counters["bad_messages"] += 1
            return True
        # a full-uplink gateway's event (or our own republished one: its seq is below the mark)
        return self._process(gw, [(seq, 2, json.dumps(obj, separators=(",", ":")).encode())], republish=False)

    def _process(self, gw, recs, republish=True):
        with self.lock:
            try:
                res = self.store.process(gw, recs, self._sink(gw))
            except WriteError as e:
                self.counters["write_errors"] += 1
                _log("%s: %s (records kept, retried in %g s)" % (gw, e, self.o["retry"]))
                return True  # saved as pending in the state directory: safe to acknowledge
            except OSError as e:
                _log("%s: state directory: %s (not acknowledged)" % (gw, e))
                return False
            self.counters["records"] += res.written
            self.counters["duplicates"] += res.duplicates
            if republish and gw in self.thin:
                self._republish(gw, res)
        return True

    def retry(self):
        """Waiting work of every gateway: a failed write, a gap that timed out."""
        for gw in self.store.gateways():
            st = self.store.state(gw)
            if st.get("pending"):
                self._process(gw, [])

    # ------------------------------------------------------------ republishing
    def _pub(self, topic, payload, retain=False, qos=0):
        if self.c is not None:
            self.c.publish(topic, payload, qos=qos, retain=retain)

    def _republish(self, gw, res):
        base = "%s/%s/" % (self.prefix, gw)
        for seq, body in res.events:
            self._pub(base + "event", body, qos=1)
            self.counters["events"] += 1
        newest = {}
        for r in res.records:
            if isinstance(r.get("device"), str):
                newest[r["device"]] = r
        for dev, r in newest.items():
            old = self.states.get((gw, dev)) or {}
            if (old.get("ts") or 0) >= r["t"]:
                continue  # the device said something newer itself
            st = dict(old)
            for k, v in r.items():
                if k in ("t", "seq", "device", "gateway"):
                    continue
                if (k.endswith("_min") or k.endswith("_max")) and k[:-4] in r:
                    continue  # the state carries the minute's average, as the device's state its value
                st[k] = v
            st["ts"] = int(r["t"])
            self.states[(gw, dev)] = st
            self._pub(base + dev + "/state", json.dumps(st, separators=(",", ":")), retain=True)
            self.counters["states"] += 1
            if self.o["discovery"]:
                self._discovery(gw, dev, st)

    def _discovery(self, gw, dev, st):
        import ha_discovery

        dp = self.o["discovery_prefix"]
        if gw not in self.gw_announced:
            self.gw_announced.add(gw)
            for topic, cfg in ha_discovery.gateway_configs(gw, prefix=self.prefix, discovery_prefix=dp):
                self._pub(topic, json.dumps(cfg, separators=(",", ":")), retain=True)
                self.counters["discovery"] += 1
        fields = [k for k in st if k != "ts"]
        done = self.announced.setdefault((gw, dev), set())
        if set(fields) <= done:
            return
        model = None
        try:
            import vedirect_text

            if isinstance(st.get("PID"), int):
                model = vedirect_text.product_name(st["PID"])
        except Exception:  # noqa: BLE001 - a name is a nicety
            model = None
        for topic, cfg in ha_discovery.iter_configs(gw, dev, fields, serial=st.get("SER#"), model=model,
                                                    prefix=self.prefix, discovery_prefix=dp):
            self._pub(topic, json.dumps(cfg, separators=(",", ":")), retain=True)
            self.counters["discovery"] += 1
        done.update(fields)

    def _full_status(self, gw, payload):
        try:
            st = json.loads(bytes(payload).decode())
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(st, dict):
            self.status[gw] = st

    def _status_delta(self, gw, payload):
        try:
            d = json.loads(bytes(payload).decode())
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(d, dict):
            return
        st = dict(self.status.get(gw) or {})
        st.update(d)
        self.status[gw] = st
        self._pub("%s/%s/status" % (self.prefix, gw), json.dumps(st, separators=(",", ":")), retain=True)


def run(args):
    try:
        opts = options(args)
        os.makedirs(opts["state_dir"], exist_ok=True)
    except BridgeError as e:
        sys.stderr.write("vegw bridge: %s\n" % e)
        return 2
    except OSError as e:
        sys.stderr.write("vegw bridge: --state-dir %s: %s\n" % (opts["state_dir"], e.strerror or e))
        return 2
    if not opts["broker"]:
        opts["broker"] = _DEFAULTS["broker"]
    link_args = argparse_namespace(opts)
    bridge = Bridge(opts)
    if bridge.influx is not None:
        try:
            bridge.influx.create_db()
        except WriteError as e:
            sys.stderr.write("vegw bridge: %s\n" % e)
            return 2
    group = opts["group"] if opts["group"] and opts["group"] != "none" else "solo"
    cid = "vegw-bridge-%s-%s" % (group, opts["instance"])

    def on_message(c, userdata, msg):
        ok = False
        try:
            ok = bridge.handle(msg.topic, msg.payload)
        except Exception as e:  # noqa: BLE001 - one bad message must not stop the service
            _log("%s: %s: %r (acknowledged, dropped)" % (msg.topic, type(e).__name__, e))
            ok = True
        if ok and msg.qos > 0:
            c.ack(msg.mid, msg.qos)

    try:
        c = mqtt_link.connect(link_args, "vegw-bridge", on_connect=bridge.on_connect, on_message=on_message,
                              keepalive=60, client_id=cid, clean_session=False, manual_ack=True)
    except mqtt_link.LinkError as e:
        sys.stderr.write("vegw bridge: %s\n" % e)
        return 2
    bridge.c = c
    _log("running as %s on %s (group %s, state %s, %s)" % (
        cid, opts["broker"], opts["group"], opts["state_dir"],
        " and ".join(x for x in (opts["influx"] and "InfluxDB " + opts["influx"], opts["stdout"] and "stdout") if x)))
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *a: stop.set())
    try:
        while not stop.wait(float(opts["retry"])):
            try:
                bridge.retry()
            except Exception as e:  # noqa: BLE001
                _log("retry: %r" % e)
    finally:
        mqtt_link.close(c)
        _log("stopped: %s" % json.dumps(bridge.counters, sort_keys=True))
    return 0


def argparse_namespace(opts):
    import argparse

    return argparse.Namespace(broker=opts["broker"], username=opts["username"], password=opts["password"],
                              tls=opts["tls"], ca=opts["ca"], insecure=opts["insecure"])
