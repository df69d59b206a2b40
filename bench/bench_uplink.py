"""Bytes per day that the firmware itself sends: the real gateway core
(firmware/lib/gateway.py with its reporter, alarm engine, derived metrics,
flash log on a simulated NOR flash, HA discovery) fed for a simulated day
with bench_mqtt's site (BMV-712 + MPPT + Phoenix inverter, one VE.Direct
block per second each, rendered as the bytes the devices send and parsed by
vedirect.Parser). Everything it puts on the uplink is counted through
bench_mqtt's byte model (exact MQTT packets + TCP/IP headers and ACKs):
state messages, status messages (with the app's extra fields), alarm
events and the flash log's 1-minute records replayed with QoS 1.

bench_mqtt.py models the state messages only; this is the whole day.
Goals: <= 1 MB/day at 1-minute resolution, overhead included (issue 10);
<= 0.3 MB/day with the thin uplink a modem brings by default (issue 18:
binary log batches, state on changes that matter, status deltas, HA
discovery served by `vegw bridge`, keepalive 240 s).
Run: .venv/bin/python bench/bench_uplink.py [--hours 24]
"""
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "firmware" / "lib"), str(ROOT / "firmware"), str(ROOT / "host_tools")]

import bench_mqtt  # noqa: E402
from bench_mqtt import GOAL, PREFIX, GW, Link, site  # noqa: E402
import alarm_engine  # noqa: E402
import flashlog  # noqa: E402
import gateway  # noqa: E402
import metrics  # noqa: E402
import vedirect  # noqa: E402
from drivers.nor_sim import NorSim  # noqa: E402
from vegw import vestream  # noqa: E402
import log_replay  # noqa: E402  (the flash-log message format)
import logpack  # noqa: E402  (the thin uplink's batches)


START = 1_800_000_000  # a Unix time: the gateway's clock in seconds



THIN_GOAL = 300_000

_KEYS = ("min_interval", "heartbeat", "status_interval", "keepalive", "uplink", "discovery", "log_hold")


def _defaults(modem, **mqtt):
    """cfg_schema's mqtt defaults, with or without a modem configured."""
    import cfg_schema

    cfg = {"gateway": {"id": GW}, "mqtt": dict(mqtt, host="broker.example"), "devices": []}
    if modem:
        cfg["modem"] = {"model": "sim7600", "apn": "internet"}
    m = cfg_schema.validate(cfg)[0]["mqtt"]
    return dict((k, m[k]) for k in _KEYS)


def _label(name, m):
    return "%s: %s uplink, min_interval %d s, heartbeat %d s, status %d s, keepalive %d s%s" % (
        name, m["uplink"], m["min_interval"], m["heartbeat"], m["status_interval"], m["keepalive"],
        ", log batches held %d s" % m["log_hold"] if m["uplink"] == "thin" else "")


# (label, mqtt settings, goal): the schema's defaults as a user gets them
_WIFI = _defaults(False)
_THIN = _defaults(True)
_CELL_FULL = _defaults(True, uplink="full")
PROFILES = (
    (_label("defaults, Wi-Fi", _WIFI), _WIFI, GOAL),
    (_label("defaults with a modem (cellular)", _THIN), _THIN, THIN_GOAL),
    (_label("cellular, full uplink", _CELL_FULL), _CELL_FULL, GOAL),
)


class _Link(Link):
    """bench_mqtt's byte model with this profile's keepalive."""

    def __init__(self, keepalive, **kw):
        Link.__init__(self, **kw)
        self.keepalive = keepalive

    def tick(self, t):
        self.flush()
        if t - self.last_rx >= self.keepalive or t - self.last_tx >= self.keepalive:
            self.send(2, t, answer=2, cat="keepalive")
            self.flush()


def _mv(v):
    return str(int(round(v * 1000)))


def _onoff(b):
    return "ON" if b else "OFF"


def raw_blocks(dev, v):
    """bench_mqtt's decoded values as the VE.Direct text blocks the device
    sends (raw units: mV, mA, permille, 0.01 kWh ...)."""
    if dev == "house":
        main = [("PID", "0xA381"), ("V", _mv(v["V"])), ("VS", _mv(v["VS"])), ("I", _mv(v["I"])),
                ("P", str(v["P"])), ("CE", _mv(v["CE"])), ("SOC", str(int(round(v["SOC"] * 10)))),
                ("TTG", "-1" if v["TTG"] is None else str(v["TTG"])), ("Alarm", _onoff(v["Alarm"])),
                ("Relay", _onoff(v["Relay"])), ("AR", str(v["AR"])), ("BMV", v["BMV"]), ("FW", v["FW"]),
                ("MON", str(v["MON"]))]
        hist = [(k, _mv(v[k])) for k in ("H1", "H2", "H3")] + [("H4", str(v["H4"])), ("H5", str(v["H5"])),
                                                              ("H6", _mv(v["H6"])), ("H7", _mv(v["H7"])),
                                                              ("H8", _mv(v["H8"])), ("H9", str(v["H9"])),
                                                              ("H10", str(v["H10"])), ("H11", str(v["H11"])),
                                                              ("H12", str(v["H12"])), ("H15", _mv(v["H15"])),
                                                              ("H16", _mv(v["H16"])),
                                                              ("H17", str(int(round(v["H17"] * 100)))),
                                                              ("H18", str(int(round(v["H18"] * 100))))]
        return [main, hist]
    if dev == "solar":
        return [[("PID", "0x%X" % v["PID"]), ("FW", v["FW"]), ("SER#", v["SER#"]), ("V", _mv(v["V"])),
                 ("I", _mv(v["I"])), ("VPV", _mv(v["VPV"])), ("PPV", str(v["PPV"])), ("CS", str(v["CS"])),
                 ("MPPT", str(v["MPPT"])), ("OR", "0x%08X" % v["OR"]), ("ERR", str(v["ERR"])),
                 ("LOAD", _onoff(v["LOAD"])), ("IL", _mv(v["IL"])), ("H19", str(int(round(v["H19"] * 100)))),
                 ("H20", str(int(round(v["H20"] * 100)))), ("H21", str(v["H21"])),
                 ("H22", str(int(round(v["H22"] * 100)))), ("H23", str(v["H23"])), ("HSDS", str(v["HSDS"]))]]
    return [[("PID", "0x%X" % v["PID"]), ("FW", v["FW"]), ("SER#", v["SER#"]), ("MODE", str(v["MODE"])),
             ("CS", str(v["CS"])), ("AR", str(v["AR"])), ("WARN", str(v["WARN"])), ("OR", "0x%08X" % v["OR"]),
             ("V", _mv(v["V"])), ("AC_OUT_V", str(int(round(v["AC_OUT_V"] * 100)))),
             ("AC_OUT_I", str(int(round(v["AC_OUT_I"] * 10)))), ("AC_OUT_S", str(v["AC_OUT_S"]))]]


def one_day(hours, mqtt_cfg):
    names = ("house", "solar", "inverter")
    cfg = {"gateway": {"id": GW}, "mqtt": dict(mqtt_cfg, prefix=PREFIX),
           "devices": [{"name": n, "type": "vedirect"} for n in names], "log": {"interval": 60}}
    engine = alarm_engine.Engine([], stale_s=60, devices=list(names))
    log = flashlog.FlashLog(NorSim(384, 4096))  # 1.5 MB
    gw = gateway.Gateway(cfg, flashlog=log, engine=engine, metrics=metrics.MetricSet())
    now = [START]
    parsers = dict((n, vedirect.Parser((lambda n: lambda blk: gw.vedirect_block(n, blk, now[0]))(n))) for n in names)

    def status_extra():  # the app's fields (app.App._status_extra), typical values
        out = {"heap_free": 61234, "heap_alloc": 163406, "loop_lag_max_ms": 7, "link": "cellular",
               "rssi_dbm": -79, "operator": "Telia", "vedirect": {}}
        for n, p in parsers.items():
            out["vedirect"][n] = dict(p.counters(), callback_errors=p.callback_errors)
        out["mqtt"] = {"connects": 1, "disconnects": 0, "bytes_sent": 123456, "timeouts": 0}
        return out

    gw.status_extra = status_extra
    link = _Link(mqtt_cfg["keepalive"], qos=0)
    thin = mqtt_cfg["uplink"] == "thin"
    hold_since = None
    link.mqtt = {}
    status_every = mqtt_cfg["status_interval"]
    connected = False
    cat_of = (("/status", "status"), ("/status/delta", "status"), ("/event", "events"), ("/state", "state"))
    for t, devs in site(hours):
        now[0] = START + t
        for dev, vals in devs.items():
            for fields in raw_blocks(dev, vals):
                parsers[dev].feed(vestream.block(fields))
        gw.tick(now[0])
        if not connected and t >= 3:  # first blocks in: connect, announce, discovery
            connected = True
            n = bench_mqtt.mqtt_async.enc_connect(bench_mqtt._BUF, "vegw-" + GW, mqtt_cfg["keepalive"], True,
                                                 "user", "password", gw.base + "availability", "offline", True, 1)
            link.send(n, t, answer=4, cat="connect")
            link.publish(gw.base + "availability", "online", t, "connect")
            gw.announce_gateway()
            gw.publish_status(now[0], full=True)
        if connected:
            if t % status_every == 0:
                gw.publish_status(now[0])
            while len(gw.out):
                topic, payload, qos, retain = gw.out.pop()
                cat = "other"
                for suffix, c in cat_of:
                    if topic.endswith(suffix):
                        cat = c
                        break
                link.send(bench_mqtt.mqtt_async.enc_publish(bench_mqtt._BUF, topic, payload, qos, retain,
                                                            1 if qos else 0), t, answer=4 if qos else 0, cat=cat)
            if gw.discovery_pending or gw._gw_announce:
                for topic, payload in gw.discovery_configs():
                    if type(payload) is tuple:  # an enum config, sent in pieces: the same bytes on the wire
                        payload = b"".join(payload)
                    link.send(bench_mqtt.mqtt_async.enc_publish(bench_mqtt._BUF, topic, payload, 0, True, 0), t,
                              cat="discovery")
            last = None
            if thin:  # log_replay.LogReplay.thin_batch's rule: batches held up to log_hold s, events at once
                pending = list(log.read_from(log.cursor + 1))
                if not pending:
                    hold_since = None
                else:
                    hold_since = t if hold_since is None else hold_since
                    urgent = any(r[1] == gateway.REC_EVENT for r in pending)
                    if urgent or t - hold_since >= mqtt_cfg["log_hold"]:
                        hold_since = None
                        while pending:
                            batch, size = [], 6
                            while pending and (not batch or size + logpack.size(len(pending[0][2]))
                                                <= logpack.MAX_PAYLOAD) and len(batch) < logpack.MAX_RECORDS:
                                size += logpack.size(len(pending[0][2]))
                                batch.append(pending.pop(0))
                            body = logpack.pack(batch)
                            link.send(bench_mqtt.mqtt_async.enc_publish(bench_mqtt._BUF, gw.base + "log", body, 1,
                                                                        False, 1), t, answer=4, cat="log")
                            last = batch[-1][0]
                pending = ()
            for seq, rtype, payload in (() if thin else log.read_from(log.cursor + 1)):
                topic, body = log_replay.log_message(gw.base, seq, rtype, payload)
                link.send(bench_mqtt.mqtt_async.enc_publish(bench_mqtt._BUF, topic, body, 1, False, 1), t,
                          answer=4, cat="log" if rtype != gateway.REC_EVENT else "events")
                last = seq
            if last is not None:
                log.mark_uploaded(last)
        link.tick(t)
    link.flush()
    return link, gw


def main(argv):
    hours = 24.0
    if "--hours" in argv:
        hours = float(argv[argv.index("--hours") + 1])
    days = hours / 24.0
    print("the firmware's whole uplink for bench_mqtt's site (BMV-712 + MPPT + Phoenix, 1 block/s each),")
    print("%.1f h simulated through the real gateway core; MQTT QoS as the firmware sends it" % hours)
    print("(state/status retained QoS 0, log and events QoS 1), + TCP/IP headers and ACKs:")
    verdicts = []
    for label, mq, goal in PROFILES:
        t0 = time.time()
        link, gw = one_day(hours, mq)
        total = link.total / days
        mq_bytes = sum(link.mqtt.values())
        parts = ", ".join("%s %d kB" % (c, v / days / 1000) for c, v in sorted(link.mqtt.items()))
        print("  %s:" % label)
        print("    %.3f MB/day, %d packets/day; MQTT bytes by kind: %s; TCP/IP headers and ACKs %d kB"
              % (total / 1e6, link.packets / days, parts, (link.total - mq_bytes) / days / 1000))
        print("    state messages %d/day (%s); %.0f s of CPU" % (
            gw.counters["state_msgs"] / days, gw.reporter.counters(), time.time() - t0))
        verdicts.append((label, total, goal))
    print("goals at 1-minute resolution (the log's 1-minute min/avg/max records are in every profile):")
    for label, total, goal in verdicts:
        print("  %-40s %.3f MB/day  goal <= %.1f  %s" % (label.split(":")[0], total / 1e6, goal / 1e6,
                                                        "MET" if total <= goal else "MISSED"))


if __name__ == "__main__":
    main(sys.argv)
