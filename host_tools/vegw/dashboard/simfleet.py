"""Simulated gateways for the dashboard's tests, benchmark and demos.

    python -m vegw.dashboard.simfleet --broker 127.0.0.1:1883 --gateways 50

Each gateway publishes what the firmware publishes (README, "MQTT topics and
payloads"): retained `availability`, a retained `status` (link, RSSI,
heartbeat_s, per-device age/staleness, alarms_active), each device's retained
`state` every round, alarm `event`s with a seq, and it answers the `logs`
command on `<prefix>/<gw>/cmd` the firmware's way: one message per flash-log
record on `<prefix>/<gw>/logs` ({"seq","type","hex"} for the binary minute
blocks, JSON with "seq" for alarm events), then {"done":true,"count":n}.
The minute blocks come from the firmware's own encoder (firmware/lib/records.py)
over a synthetic solar day, so the dashboard's charts decode real frames.

One MQTT connection carries every gateway (load on the broker and the
dashboard is the point, not 1,000 TCP sessions); values are deterministic
per (gateway, time), so a test knows what the page must show.
"""
import argparse
import json
import math
import sys
import threading
import time

import vegw  # noqa: F401 - puts firmware/lib on sys.path (records.py)

DEVICES = ("bmv", "mppt", "inverter")
# fields each device logs, sorted as the firmware's aggregator sorts them
LOG_LAYOUT = (("bmv", ("I", "SOC", "V")), ("mppt", ("IL", "PPV", "V")), ("inverter", ("AC_OUT_S", "V")))


def gw_name(g):
    return "site%04d" % g


def site_values(g, t):
    """The site's readings at unix time t (deterministic): a solar day."""
    hour = (t % 86400) / 3600.0
    sun = max(0.0, math.sin(math.pi * (hour - 6) / 12)) if 6 <= hour <= 18 else 0.0
    nominal = (12, 24, 48)[g % 3]
    soc_base = 15.0 if g % 17 == 5 else 35.0 + (g * 37) % 50  # a few weak sites
    soc = max(3.0, min(100.0, soc_base + 12 * math.sin(2 * math.pi * (hour - 9) / 24)))
    v = nominal * (0.96 + 0.1 * soc / 100)
    ppv = round((400 + (g * 131) % 1200) * sun)
    load = 80 + (g * 13) % 300 + 20 * math.sin(2 * math.pi * t / 10800.0)
    bat_i = (ppv * 0.95 - load) / v
    return {"soc": round(soc, 1), "v": round(v, 2), "i": round(bat_i, 1), "ppv": ppv,
            "il": round(load * 0.3 / v, 1), "ac_va": round(load * 0.7), "yield_kwh": round(ppv * 0.004, 2)}


def states(g, t):
    """{device: state payload} as the firmware publishes them."""
    s = site_values(g, t)
    return {
        "bmv": {"V": s["v"], "I": s["i"], "P": round(s["v"] * s["i"]), "SOC": s["soc"], "CE": round(-s["soc"], 1),
                "TTG": None, "T": 21.5, "ts": int(t)},
        "mppt": {"V": s["v"], "I": round(s["ppv"] / s["v"], 1), "PPV": s["ppv"], "VPV": round(s["v"] * 2.4, 2),
                 "IL": s["il"], "LOAD": True, "CS": 3 if s["ppv"] else 0, "H20": s["yield_kwh"],
                 "ts": int(t)},
        "inverter": {"V": s["v"], "AC_OUT_V": 230.1, "AC_OUT_I": round(s["ac_va"] / 230.0, 1),
                     "AC_OUT_S": s["ac_va"], "MODE": 2, "ts": int(t)},
    }


def history_frames(g, t_end, minutes, first_seq=1):
    """[(seq, rtype, payload)] of the site's flash log over `minutes` minutes
    up to t_end: binary minute blocks from records.MinuteEncoder, key frame
    each hour, 5 minutes per record, as the gateway writes them."""
    import records

    enc = records.MinuteEncoder([(d, list(f)) for d, f in LOG_LAYOUT], key_every=60, per_record=5)
    out = []
    t0 = int(t_end // 60 * 60) - 60 * minutes

    def scaled(v, name):
        return records.to_scaled(v, records.res(name)[0])

    for m in range(minutes):
        t = t0 + 60 * (m + 1)
        s = site_values(g, t - 30)
        lo, hi = site_values(g, t - 60), site_values(g, t)

        def agg(key, name):
            a = [scaled(lo[key], name), scaled(s[key], name), scaled(hi[key], name)]
            return (min(a), a[1], max(a))

        rows = [[agg("i", "I"), scaled(s["soc"], "SOC"), agg("v", "V")],
                [agg("il", "IL"), agg("ppv", "PPV"), agg("v", "V")],
                [agg("ac_va", "AC_OUT_S"), agg("v", "V")]]
        for rtype, payload in enc.add(t, rows):
            out.append((first_seq + len(out), rtype, payload))
    last = enc.take()
    if last is not None:
        out.append((first_seq + len(out), last[0], last[1]))
    return out


class SimFleet:
    """N gateways on one paho connection; call publish_round() to send a
    round of states (the caller paces it), the other methods to make news."""

    def __init__(self, broker, n, prefix="vegw", history_minutes=24 * 60, heartbeat_s=300, clock=time.time):
        self.broker = broker  # HOST:PORT (mqtt_link.parse_broker)
        self.n = n
        self.prefix = prefix.rstrip("/")
        self.history_minutes = history_minutes
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.alarms = {}  # g -> {rule: severity}
        self.offline = set()
        self.seq = {}  # g -> last log seq used
        self.history = {}  # g -> frames (built on the first logs request)
        self.log_requests = {}  # g -> logs commands answered
        self.lock = threading.Lock()
        self.client = None

    # ------------------------------------------------------------ connection
    def start(self):
        from .. import mqtt_link

        args = argparse.Namespace(broker=self.broker)
        try:
            c = mqtt_link.connect(args, "vegw-simfleet", keepalive=60, on_message=self._on_message,
                                  on_connect=lambda cl: cl.subscribe(self.prefix + "/+/cmd", qos=1),
                                  setup=lambda cl: cl.max_queued_messages_set(0))
        except mqtt_link.LinkError as e:
            raise OSError(str(e))
        self.client = c
        now = self.clock()
        for g in range(self.n):
            self.pub(g, "availability", "online", retain=True)
            self.publish_status(g, now)
        self.publish_round(now)
        return self

    def stop(self):
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()
            self.client = None

    def pub(self, g, sub, payload, qos=0, retain=False):
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        return self.client.publish("%s/%s/%s" % (self.prefix, gw_name(g), sub), payload, qos=qos, retain=retain)

    # ------------------------------------------------------------ what gateways send
    def status(self, g, now):
        return {"fw": "0.1.0", "uptime_s": 3600 + g, "ts": int(now), "heartbeat_s": self.heartbeat_s,
                "heap_free": 40000, "link": "cellular" if g % 4 == 3 else "wifi", "rssi_dbm": -55 - (g * 7) % 45,
                "devices": {d: {"readings": 100, "age_s": 1, "stale": False} for d in DEVICES},
                "alarms_active": sorted(self.alarms.get(g, {})),
                "log": {"unsent": 0, "interval_s": 60, "history_days": 30.0}}

    def publish_status(self, g, now=None):
        self.pub(g, "status", self.status(g, self.clock() if now is None else now), retain=True)

    def publish_round(self, now=None, gateways=None):
        """One retained state per device of every online gateway."""
        now = self.clock() if now is None else now
        info = None
        for g in (range(self.n) if gateways is None else gateways):
            if g in self.offline:
                continue
            for dev, st in states(g, now).items():
                info = self.pub(g, dev + "/state", st, retain=True)
        if info is not None:
            info.wait_for_publish(30)

    def publish_state(self, g, dev, payload):
        self.pub(g, dev + "/state", payload, retain=True).wait_for_publish(10)

    def go_offline(self, g):
        """What the broker does with the gateway's last will."""
        self.offline.add(g)
        self.pub(g, "availability", "offline", qos=1, retain=True).wait_for_publish(10)

    def come_back(self, g):
        self.offline.discard(g)
        self.pub(g, "availability", "online", qos=1, retain=True).wait_for_publish(10)
        self.publish_status(g)

    def _next_seq(self, g):
        with self.lock:
            if g not in self.seq:
                self.seq[g] = len(self._history(g))
            self.seq[g] += 1
            return self.seq[g]

    def alarm(self, g, rule, severity="alarm", raised=True, now=None):
        now = self.clock() if now is None else now
        if raised:
            self.alarms.setdefault(g, {})[rule] = severity
        else:
            self.alarms.get(g, {}).pop(rule, None)
        ev = {"seq": self._next_seq(g), "t": int(now), "rule": rule, "event": "raised" if raised else "cleared",
              "severity": severity, "values": {}, "ts": int(now)}
        self.pub(g, "event", ev, qos=1).wait_for_publish(10)
        self.publish_status(g, now)

    # ------------------------------------------------------------ the logs command
    def _history(self, g):
        h = self.history.get(g)
        if h is None:
            h = self.history[g] = history_frames(g, self.clock(), self.history_minutes)
        return h

    def _on_message(self, client, userdata, msg):
        parts = msg.topic.split("/")
        try:
            g = int(parts[-2][4:])
            req = json.loads(msg.payload)
        except (ValueError, IndexError):
            return
        if not 0 <= g < self.n or g in self.offline or not isinstance(req, dict):
            return
        if req.get("cmd") != "logs":
            self.pub(g, "cmd/reply", {"ok": False, "error": "not simulated: %s" % req.get("cmd")}, qos=1)
            return
        threading.Thread(target=self._answer_logs, args=(g, req), daemon=True).start()

    def _answer_logs(self, g, req):
        with self.lock:
            self.log_requests[g] = self.log_requests.get(g, 0) + 1
            frames = self._history(g)
        start = req.get("from_seq") or 1
        limit = min(2000, max(1, int(req.get("max") or 200)))
        n = 0
        for seq, rtype, payload in frames:
            if seq < start:
                continue
            if n >= limit:
                break
            self.pub(g, "logs", '{"seq":%d,"type":%d,"hex":"%s"}' % (seq, rtype, payload.hex()), qos=1)
            n += 1
        self.pub(g, "logs", '{"done":true,"count":%d}' % n, qos=1)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m vegw.dashboard.simfleet", description=__doc__.splitlines()[0])
    ap.add_argument("--broker", default="127.0.0.1:1883")
    ap.add_argument("--prefix", default="vegw")
    ap.add_argument("--gateways", type=int, default=50)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between state rounds")
    ap.add_argument("--duration", type=float, default=0, help="seconds to run (0: until Ctrl-C)")
    ap.add_argument("--history-days", type=float, default=2.0, help="days of log each gateway answers with")
    a = ap.parse_args(argv)
    try:
        fleet = SimFleet(a.broker, a.gateways, a.prefix, history_minutes=int(a.history_days * 1440)).start()
    except OSError as e:
        sys.stderr.write("simfleet: cannot connect to %s: %s\n" % (a.broker, e))
        return 2
    t0 = time.monotonic()
    rnd = 0
    try:
        while not a.duration or time.monotonic() - t0 < a.duration:
            rnd += 1
            time.sleep(max(0.0, t0 + rnd * a.interval - time.monotonic()))
            fleet.publish_round()
            if rnd % 7 == 0:  # some news now and then
                g = (rnd * 31) % a.gateways
                fleet.alarm(g, "low_soc", "warning", raised="low_soc" not in fleet.alarms.get(g, {}))
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
