"""Load generator: N simulated gateways x M devices publishing to a broker.

    python -m vegw.loadgen --broker 127.0.0.1:1883 --gateways 1000 --devices 3 \
        --interval 5 --duration 60

Publishes, per gateway, what the firmware publishes (topic shapes from
docs/cli.md): retained `availability` "online", a `status` JSON, and every
`--interval` seconds one `state` JSON per device (QoS 0, with "ts" and "seq").
One MQTT connection carries all gateways: the point is load on the broker and
on `vegw monitor`, not 1,000 TCP sessions. Values are deterministic per
(gateway, device) so a test can check what the monitor shows.

--offline K marks the last K gateways "offline"; --silent K publishes one
round for the last K gateways (with an old ts) and then nothing, so they turn
stale; --alarms K raises one alarm event on the first K gateways.
"""
import argparse
import json
import sys
import time

from . import mqtt_link

DEVICES = ("bmv", "mppt", "inverter", "shunt", "orion")


def values(g, d, rnd=0):
    """Deterministic state for gateway index g, device index d, round rnd."""
    soc = round(((g * 37 + d * 11) % 1000) / 10.0, 1)
    v = round(11.5 + ((g * 13 + d * 7 + rnd) % 300) / 100.0, 2)
    i = round(((g * 7 + d * 3) % 400) / 10.0 - 20.0, 1)
    out = {"V": v, "I": i}
    if d == 1:
        out["PPV"] = (g * 17) % 900
        out["VPV"] = round(v * 2.5, 2)
    else:
        out["SOC"] = soc
    return out


def gw_name(g):
    return "gw%04d" % g


def publish_round(c, prefix, ngw, ndev, rnd, now, skip_from=None, old_ts=None, retain=True):
    n = 0
    info = None
    for g in range(ngw):
        silent = skip_from is not None and g >= skip_from
        if silent and rnd > 0:
            continue
        ts = old_ts if silent else now
        for d in range(ndev):
            st = values(g, d, rnd)
            st["ts"] = ts
            st["seq"] = rnd
            info = c.publish("%s/%s/%s/state" % (prefix, gw_name(g), DEVICES[d % len(DEVICES)]), json.dumps(st),
                             qos=0, retain=retain)
            n += 1
    if info is not None:
        info.wait_for_publish(10)  # paho's queue is drained before the next round
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m vegw.loadgen", description=__doc__.splitlines()[0])
    mqtt_link.add_arguments(ap, default="127.0.0.1:1883")  # the broker options every command takes
    ap.add_argument("--prefix", default="vegw")
    ap.add_argument("--gateways", type=int, default=1000)
    ap.add_argument("--devices", type=int, default=3, help="devices per gateway (max %d)" % len(DEVICES))
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between state rounds")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds to run (0: one round and exit)")
    ap.add_argument("--offline", type=int, default=0)
    ap.add_argument("--silent", type=int, default=0)
    ap.add_argument("--alarms", type=int, default=0)
    ap.add_argument("--no-retain", dest="retain", action="store_false", help="publish state not retained")
    a = ap.parse_args(argv)
    if not 1 <= a.devices <= len(DEVICES) or a.gateways < 1:
        sys.stderr.write("loadgen: --devices 1..%d and --gateways >= 1\n" % len(DEVICES))
        return 2
    try:
        c = mqtt_link.connect(a, "vegw-loadgen", keepalive=60, setup=lambda cl: cl.max_queued_messages_set(0))
    except mqtt_link.LinkError as e:
        sys.stderr.write("loadgen: %s\n" % e)
        return 2
    now = time.time()
    for g in range(a.gateways):
        gw = gw_name(g)
        off = g >= a.gateways - a.offline
        c.publish("%s/%s/availability" % (a.prefix, gw), "offline" if off else "online", qos=0, retain=True)
        c.publish("%s/%s/status" % (a.prefix, gw), json.dumps({
            "uptime_s": 1000 + g, "heap_free": 40000, "link": "cellular" if g % 4 == 3 else "wifi",
            "rssi_dbm": -50 - g % 50, "fw": "0.1.0", "ts": now}), qos=0, retain=True)
        if g < a.alarms:
            c.publish("%s/%s/event" % (a.prefix, gw), json.dumps({
                "t": now, "rule": "low_bank", "event": "raise", "severity": "alarm"}), qos=0)
    skip_from = a.gateways - a.silent if a.silent else None
    t0 = time.monotonic()
    rnd = 0
    total = 0
    while True:
        total += publish_round(c, a.prefix, a.gateways, a.devices, rnd, time.time(), skip_from, now - 3600, a.retain)
        rnd += 1
        if time.monotonic() - t0 + a.interval > a.duration:
            break
        time.sleep(max(0.0, t0 + rnd * a.interval - time.monotonic()))
    c.loop_stop()
    c.disconnect()
    sys.stderr.write("loadgen: %d state messages in %d rounds (%.1f s)\n" % (total, rnd, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
