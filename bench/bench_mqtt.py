"""Bytes per day on the uplink for a typical site: BMV-712 + MPPT + Phoenix
inverter, one VE.Direct block per second each, values drifting over a
simulated day (sun curve with clouds, fridge cycles, kettle, evening TV).

Counted per MQTT packet: its exact bytes (mqtt_async's coders) + 40 B of
TCP/IP headers, plus one 40-byte TCP ACK coming back (no delayed-ACK
coalescing: an upper bound). QoS 1 adds PUBACK (4 B + 40) and our ACK of it.
Keepalive pings follow mqtt_async's rule (PINGREQ when nothing was received
for `keepalive` s). Per day also: status every 5 min, one HA discovery set and
one connect. TLS adds 29 B per record (5 header + 8 explicit nonce + 16
AES-GCM tag) and ~5 KB per handshake.

Goal (issue 10): <= 1 MB/day at 1-minute resolution, overhead included.
This models the state messages (the status here is a 100-byte stand-in);
bench_uplink.py counts everything the firmware itself sends.
Run: .venv/bin/python bench/bench_mqtt.py [--hours 24]
"""
import json
import math
import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "firmware" / "lib")]

import ha_discovery  # noqa: E402
import mqtt_async  # noqa: E402
import reporter  # noqa: E402

TCPIP = 40  # IPv4 20 + TCP 20, no options
TLS_RECORD = 29
TLS_HANDSHAKE = 5000
GW = "site-042"
PREFIX = "vegw"
KEEPALIVE = 60
HEARTBEAT = 60
GOAL = 1_000_000

_BUF = bytearray(4096)


def publish_bytes(topic, payload, qos=0):
    return mqtt_async.enc_publish(_BUF, topic, payload, qos, False, 1 if qos else 0)


class Link:
    """Byte counter for one MQTT connection (both directions).

    Packets sent in the same second are written back to back. With Nagle
    (lwIP's default; mqtt_async never sets TCP_NODELAY) the first goes out
    alone and the rest wait for its ACK and share segments (MSS 1460); the
    broker's replies to them (PUBACKs) share a segment the same way. Every
    segment costs 40 B of TCP/IP headers; every segment received is ACKed
    (40 B) unless a reply carries the ACK. Over TLS each MQTT packet is its
    own TLS record (+29 B)."""

    MSS = 1460

    def __init__(self, qos=0, tls=False, nagle=True):
        self.qos = qos
        self.tls = tls
        self.nagle = nagle
        self.up = 0
        self.down = 0
        self.packets = 0
        self.segments = 0
        self.last_rx = 0
        self.last_tx = 0
        self.pending = []
        self.mqtt = {}  # category -> MQTT bytes (both directions), the rest is TCP/IP/TLS

    def _rec(self, n):
        return n + (TLS_RECORD if self.tls else 0)

    def send(self, nbytes, t, answer=0, cat="state"):
        """Queue one packet for this second. answer: bytes of the MQTT reply
        (PUBACK 4, PINGRESP 2, CONNACK 4), 0 = none."""
        self.mqtt[cat] = self.mqtt.get(cat, 0) + nbytes + answer
        self.packets += 1
        self.pending.append((nbytes, answer))
        self.last_tx = t
        if answer:
            self.last_rx = t

    def _exchange(self, pkts):
        """One burst of packets that share segments, and the replies to them."""
        up = sum(self._rec(n) for n, _ in pkts)
        nseg = (up + self.MSS - 1) // self.MSS
        self.segments += nseg
        self.up += up + TCPIP * nseg
        replies = [a for _, a in pkts if a]
        if replies:
            down = sum(self._rec(a) for a in replies)
            dseg = (down + self.MSS - 1) // self.MSS
            self.down += down + TCPIP * dseg  # the replies carry the ACK
            self.up += TCPIP * dseg  # our ACK of them
        else:
            self.down += TCPIP * nseg  # bare ACKs

    def flush(self):
        if not self.pending:
            return
        if self.nagle:
            self._exchange(self.pending[:1])
            if len(self.pending) > 1:
                self._exchange(self.pending[1:])
        else:
            for p in self.pending:
                self._exchange([p])
        self.pending = []

    def tick(self, t):
        self.flush()
        # mqtt_async's rule: PINGREQ after `keepalive` s without receiving or sending
        if t - self.last_rx >= KEEPALIVE or t - self.last_tx >= KEEPALIVE:
            self.send(2, t, answer=2, cat="keepalive")
            self.flush()

    def publish(self, topic, payload, t, cat="state"):
        self.send(publish_bytes(topic, payload, self.qos), t, answer=4 if self.qos else 0, cat=cat)

    def connect(self, devices):
        """CONNECT with will + CONNACK, "online", HA discovery for every field.
        Returns the number of discovery configs."""
        n = mqtt_async.enc_connect(_BUF, "vegw-" + GW, KEEPALIVE, True, "user", "password",
                                   "%s/%s/availability" % (PREFIX, GW), "offline", True, 1)
        self.send(n, 0, answer=4, cat="connect")
        self.publish("%s/%s/availability" % (PREFIX, GW), "online", 0, "connect")
        disc = 0
        for topic, p in ha_discovery.gateway_configs(GW, PREFIX):
            disc += 1
            self.publish(topic, json.dumps(p, separators=(",", ":")), 0, "discovery")
        for dev, (fields, serial, model) in devices.items():
            for topic, p in ha_discovery.iter_configs(GW, dev, fields, serial=serial, model=model):
                disc += 1
                self.publish(topic, json.dumps(p, separators=(",", ":")), 0, "discovery")
        self.flush()
        if self.tls:
            self.up += TLS_HANDSHAKE // 3
            self.down += TLS_HANDSHAKE * 2 // 3
        self.once = self.total  # once per day, not scaled with --hours
        self.once_packets = self.packets
        return disc

    @property
    def total(self):
        return self.up + self.down


def site(hours, seed=1, pv_jitter=0.01):
    """Yield (t, {device: state dict}) once per second."""
    rnd = random.Random(seed)
    soc = 78.0
    cap = 200.0
    cloud = 1.0
    ce = -44.0
    h17, h18, h19, h20, h21 = 512.30, 498.70, 1234.56, 0.0, 0
    h1, h2 = -120.5, -44.0
    t_full = 20000
    fridge_on = False
    for t in range(int(hours * 3600)):
        tod = t % 86400
        if tod % 60 == 0:
            cloud = min(1.0, max(0.25, cloud + rnd.uniform(-0.15, 0.15)))
        sun = max(0.0, math.sin(math.pi * (tod - 6 * 3600) / (12 * 3600)))
        ppv = int(420 * sun * cloud * rnd.uniform(1 - pv_jitter, 1 + pv_jitter))
        # AC loads
        if tod % 2400 == 0:
            fridge_on = True
        if tod % 2400 == 900:
            fridge_on = False
        ac_p = 60 + (75 if fridge_on else 0) + rnd.randint(-3, 3)
        if 7.5 * 3600 <= tod < 7.5 * 3600 + 180:
            ac_p += 1800
        if 12.5 * 3600 <= tod < 12.5 * 3600 + 120:
            ac_p += 900
        if 19 * 3600 <= tod < 22 * 3600:
            ac_p += 110
        load_on = not (1 * 3600 <= tod < 5 * 3600)
        il = 0.5 + rnd.uniform(-0.05, 0.05) if load_on else 0.0
        v_est = 12.0 + soc / 100.0
        i_chg = ppv * 0.97 / v_est
        i_inv = ac_p / 0.88 / v_est
        i_bat = i_chg - il - i_inv
        if soc >= 100 and i_bat > 0:
            i_bat = 0.0
            t_full = t
        soc = min(100.0, max(0.0, soc + i_bat / cap / 36.0))
        ce = min(0.0, ce + i_bat / 3600)
        h1 = min(h1, ce)
        v = round(min(14.4, 12.0 + soc / 100.0 + 0.012 * i_bat + rnd.uniform(-0.008, 0.008)), 2)
        i_meas = round(i_bat + rnd.uniform(-0.08, 0.08), 3)
        p = int(round(v * i_meas))
        if i_bat > 0:
            h18 += v * i_bat / 3.6e6
        else:
            h17 += -v * i_bat / 3.6e6
        h20 += ppv / 3.6e6
        h19 += ppv / 3.6e6
        h21 = max(h21, ppv)
        cs = 0 if ppv == 0 else (4 if v >= 14.3 else 3)
        ttg = None if i_bat >= 0 else int(min(14400, soc / 100 * cap / -i_bat * 60))
        bmv = {"V": v, "VS": round(12.7 + rnd.uniform(-0.005, 0.005), 2), "I": i_meas, "P": p,
               "CE": round(ce, 1), "SOC": round(soc, 1), "TTG": ttg, "Alarm": False, "Relay": False,
               "AR": 0, "BMV": "712 Smart", "FW": "0413", "MON": 0,
               "H1": round(h1, 1), "H2": round(h2, 1), "H3": -60.0, "H4": 312, "H5": 0,
               "H6": -20450.0, "H7": 11.82, "H8": 14.6, "H9": t - t_full, "H10": 31, "H11": 0,
               "H12": 0, "H15": 0.02, "H16": 14.9, "H17": round(h17, 2), "H18": round(h18, 2)}
        mppt = {"V": v, "I": round(i_chg, 1), "VPV": round(36.5 + rnd.uniform(-0.3, 0.3), 2) if ppv else 0.0,
                "PPV": ppv, "CS": cs, "MPPT": 2 if ppv else 0, "OR": 0, "ERR": 0, "LOAD": load_on,
                "IL": round(il, 1), "H19": round(h19, 2), "H20": round(h20, 2), "H21": h21,
                "H22": 1.73, "H23": 388, "HSDS": 41, "FW": "164", "PID": 41055, "SER#": "HQ2230ABCDE"}
        ac_v = round(230.0 + rnd.uniform(-0.6, 0.6), 1)
        inv = {"MODE": 2, "CS": 9, "AR": 0, "WARN": 0, "OR": 0, "V": v, "AC_OUT_V": ac_v,
               "AC_OUT_I": round(ac_p / 0.9 / ac_v, 1), "AC_OUT_S": int(ac_p / 0.9),
               "FW": "0114", "PID": 41265, "SER#": "HQ2151XYZAB"}
        yield t, {"house": bmv, "solar": mppt, "inverter": inv}


DEVICES = {
    "house": (None, "HQ2132ABCDE", "BMV-712 Smart"),
    "solar": (None, "HQ2230ABCDE", "SmartSolar MPPT 100/30"),
    "inverter": (None, "HQ2151XYZAB", "Phoenix Inverter 12/800"),
}


def state_json(values):
    return json.dumps(values, separators=(",", ":"))


# (label, heartbeat s, hold-off ms): the strict reading (every state at least
# once a minute) and the default (a change is reported within a minute, an
# unchanged state every 5 minutes: 1-minute resolution within the deadbands)
TIGHT = {"A": (0.2, 2), "W": (5, 2), "VA": (5, 2), "min": (5, 5)}  # the example deadbands
# (label, heartbeat s, hold-off ms, aligned, unit deadbands)
CONFIGS = (
    ("every state every 60 s + changes (tight deadbands)", 60, 0, False, TIGHT),
    ("heartbeat 300 s, changes within 60 s (tight deadbands)", 300, 60000, True, TIGHT),
    ("heartbeat 300 s, changes within 60 s (default deadbands)", 300, 60000, True, None),
)
# (label, qos, tls, what is published, Nagle): "state" the whole state JSON,
# "lean" the state JSON without the identity labels (SER#, PID, FW, FWE, BMV,
# HSDS: sent once in a retained info topic instead), "values" per-value topics
KINDS = (("state JSON, QoS 0", 0, False, "state", True), ("state JSON, QoS 1", 1, False, "state", True),
         ("state JSON, QoS 1, TLS", 1, True, "state", True),
         ("state JSON, QoS 1, every packet its own segment", 1, False, "state", False),
         ("state JSON without identity labels, QoS 1", 1, False, "lean", True),
         ("per-value topics, QoS 0", 0, False, "values", True))
IDENTITY = ("SER#", "PID", "FW", "FWE", "BMV", "HSDS")


def run(hours):
    naive_topic = Link(0, nagle=False)
    naive_json = Link(0, nagle=False)
    ours = []  # (config label, reporter, [(kind, link)], publishes, max gap)
    for label, hb, hold, aligned, units in CONFIGS:
        rep = reporter.Reporter(heartbeat_s=hb, min_interval_ms=hold, aligned=aligned, unit_deadbands=units)
        ours.append([label, rep, [(k, Link(q, tls, nagle)) for k, q, tls, _, nagle in KINDS], 0, 0, {}])
    status_t = -300
    discovery = 0
    json_sizes = {}
    for t, devs in site(hours):
        if t == 0:
            devices = {d: (list(v), DEVICES[d][1], DEVICES[d][2]) for d, v in devs.items()}
            for link in [naive_topic, naive_json] + [lk for o in ours for _, lk in o[2]]:
                discovery = link.connect(devices)
        now = t * 1000
        for dev, vals in devs.items():
            payload = state_json(vals)
            lean = state_json(dict((k, v) for k, v in vals.items() if k not in IDENTITY))
            json_sizes[dev] = len(payload)
            topic = "%s/%s/%s/state" % (PREFIX, GW, dev)
            for o in ours:
                rep = o[1]
                why = rep.check(dev, vals, now)
                if not why:
                    continue
                o[3] += 1
                o[4] = max(o[4], t - o[5].get(dev, t))
                o[5][dev] = t
                for (kind, _, _, what, _), (_, link) in zip(KINDS, o[2]):
                    if what == "lean":
                        link.publish(topic, lean, t)
                    elif what == "values":
                        fields = rep.changed if why == "change" else list(vals)
                        for f in fields:
                            link.publish("%s/%s/%s/%s" % (PREFIX, GW, dev, f), json.dumps(vals.get(f)), t)
                    else:
                        link.publish(topic, payload, t)
            naive_json.publish(topic, payload, t)
            for f, v in vals.items():
                naive_topic.publish("%s/%s/%s/%s" % (PREFIX, GW, dev, f), json.dumps(v), t)
        if t - status_t >= 300:
            status_t = t
            st = '{"uptime":%d,"heap":61234,"rssi":-71,"fw":"0.1.0","tx":123456,"rx":2345,"drops":0}' % t
            for o in ours:
                for _, link in o[2]:
                    link.publish("%s/%s/status" % (PREFIX, GW), st, t, "status")
        for link in [naive_topic, naive_json] + [lk for o in ours for _, lk in o[2]]:
            link.tick(t)
    for link in [naive_topic, naive_json] + [lk for o in ours for _, lk in o[2]]:
        link.flush()
    return naive_topic, naive_json, ours, discovery, json_sizes


def main(argv):
    hours = 24.0
    if "--hours" in argv:
        hours = float(argv[argv.index("--hours") + 1])
    naive_topic, naive_json, ours, discovery, sizes = run(hours)
    days = hours / 24.0

    def mb(link):
        return ((link.total - link.once) / days + link.once) / 1e6

    def pk(link):
        return (link.packets - link.once_packets) / days + link.once_packets

    print("site: BMV-712 + MPPT + Phoenix inverter, 1 block/s each, %.1f h simulated" % hours)
    print("state JSON sizes: " + ", ".join("%s %d B" % kv for kv in sorted(sizes.items())))
    print("overhead counted: MQTT packet bytes + %d B TCP/IP per packet + TCP ACKs; QoS 1 PUBACKs;" % TCPIP)
    print("  keepalive %d s; status every 5 min; 1 connect + %d HA discovery configs per run" % (KEEPALIVE, discovery))
    print()
    print("%-58s %11s %9s" % ("scheme", "packets/d", "MB/day"))
    print("%-58s %11d %9.3f" % ("naive: every value every second, own topic, QoS 0", pk(naive_topic), mb(naive_topic)))
    print("%-58s %11d %9.3f" % ("naive: state JSON every second, QoS 0", pk(naive_json), mb(naive_json)))
    verdict = None
    for label, rep, links, pubs, gap, _ in ours:
        print("vegw, %s; %d state publishes/day, longest gap %d s:"
              % (label, pubs / days, gap))
        for kind, link in links:
            print("  %-56s %11d %9.3f" % (kind, pk(link), mb(link)))
        verdict = (label, dict((k, mb(lk)) for k, lk in links))
    print()
    label, figs = verdict
    print("deadbands: tight = A 0.2|2 %, W/VA 5|2 %; default = A 0.5|5 %, W/VA 10|5 %; both V 0.05, % 0.5, states any change")
    link = ours[-1][2][1][1]
    parts = ["%s %.0f kB" % (k, v / (1 if k in ("connect", "discovery") else days) / 1e3)
             for k, v in sorted(link.mqtt.items())]
    parts.append("TCP/IP headers and ACKs %.0f kB" % ((mb(link) * 1e6 - sum(
        v / (1 if k in ("connect", "discovery") else days) for k, v in link.mqtt.items())) / 1e3))
    print("where the default QoS 1 bytes go (per day): " + ", ".join(parts))
    print("goal <= %.1f MB/day, %s:" % (GOAL / 1e6, label))
    for k in ("state JSON, QoS 1", "state JSON, QoS 1, TLS", "state JSON without identity labels, QoS 1",
              "per-value topics, QoS 0"):
        print("  %-46s %.3f MB/day  %s" % (k, figs[k], "MET" if figs[k] * 1e6 <= GOAL else "MISSED"))
    print("naive per-value topics every second is %.0fx the state JSON QoS 1 figure"
          % (mb(naive_topic) / figs["state JSON, QoS 1"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
