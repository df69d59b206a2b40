"""vegw sim: the real firmware under the MicroPython unix port, fed by
simulated devices, publishing to a real Mosquitto.

  vegw sim [--broker HOST:PORT] [--gateway ID] [--vedirect NAME=FILE ...]
           [--config FILE] [--speed X] [--duration SECONDS]

With no --broker a Mosquitto is started on a free loopback port (printed).
With no devices: the demo site (BMV-712 "house", MPPT with load output
"solar", Phoenix inverter "inverter" on VE.Direct; SmartShunt "shunt" and
Orion XS "orion" over BLE). --vedirect replays a raw capture as the serial
stream of device NAME at 19200 baud x --speed, looping at the end.
--duration stops cleanly: "offline" on the availability topic, queues
flushed, exit 0.
"""
import json
import os
import signal
import sys
import time

from . import vestream
from .simulator import DEMO_VEDIRECT, BleDevice, Site


def add_arguments(p):
    p.add_argument("--broker", help="HOST:PORT of an MQTT broker (default: start mosquitto on loopback)")
    p.add_argument("--gateway", default="sim1", help="gateway id (default sim1)")
    p.add_argument("--vedirect", action="append", default=[], metavar="NAME=FILE",
                   help="replay a raw capture as device NAME (repeatable)")
    p.add_argument("--config", help="config file (devices in it are simulated)")
    p.add_argument("--speed", type=float, default=1.0, help="stream speed factor (default 1)")
    p.add_argument("--duration", type=float, help="stop cleanly after this many seconds")
    p.add_argument("--quiet", action="store_true", help="do not echo the firmware's console")


def _err(msg):
    sys.stderr.write("vegw sim: %s\n" % msg)
    return 2


def _stop_on_term(signum, frame):
    raise KeyboardInterrupt  # SIGTERM: the same clean stop as Ctrl-C


def run(args):
    signal.signal(signal.SIGTERM, _stop_on_term)
    broker = None
    if args.broker:
        try:
            host, port = args.broker.rsplit(":", 1)
            port = int(port)
        except ValueError:
            return _err("--broker must be HOST:PORT, got %r" % args.broker)
    else:
        from .broker import Broker

        broker = Broker()
        try:
            broker.start()
        except Exception as e:
            return _err("cannot start mosquitto: %s (install it: apt-get install mosquitto)" % e)
        host, port = "127.0.0.1", broker.port
        print("vegw sim: started mosquitto on %s:%d" % (host, port), flush=True)

    feeds = {}
    for spec in args.vedirect:
        if "=" not in spec:
            return _err("--vedirect takes NAME=FILE, got %r" % spec)
        name, path = spec.split("=", 1)
        try:
            with open(path, "rb") as f:
                feeds[name] = f.read()
        except OSError as e:
            return _err("%s: %s" % (path, e.strerror))
        if not feeds[name]:
            return _err("%s: empty capture" % path)

    config = None
    ble = True
    if args.config:
        try:
            with open(args.config) as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            return _err("%s: %s" % (args.config, e))
        config.setdefault("gateway", {})["id"] = config.get("gateway", {}).get("id") or args.gateway
        models = [m for _, m in DEMO_VEDIRECT]
        for i, d in enumerate(x for x in config.get("devices", []) if x.get("type") == "vedirect"):
            if d["name"] not in feeds:
                feeds[d["name"]] = vestream.make(models[i % len(models)], seed=i + 1).second
        ble = False
    elif feeds:
        ble = False

    site_kw = dict(gateway=args.gateway, broker=(host, port), speed=args.speed, duration=args.duration,
                   stdout=sys.stdout if not args.quiet else open(os.devnull, "w"))
    site = Site(vedirect=feeds or None, ble=ble if not feeds else False, config=config, **site_kw)
    if config is not None:
        # BLE devices of a user config get a simulated battery monitor each
        devs = [BleDevice(d["name"], d["mac"], "battery_monitor", d["key"],
                          lambda t: {"V": 12.8, "I": -2.0, "SOC": 80.0, "CE": -10.0, "TTG": 600, "AR": 0})
                for d in config.get("devices", []) if d.get("type") == "ble"]
        if devs and site.air is None:
            from .simulator import BleAir

            site.air = BleAir(devs, args.speed)
            site.air.start()
    gw = site.config["gateway"]["id"]
    print("vegw sim: gateway %s publishing to %s:%d under vegw/%s/#  (watch: vegw monitor --broker %s:%d)"
          % (gw, host, port, gw, host, port), flush=True)
    rc = 0
    try:
        if args.duration:
            rc = site.fw.wait(args.duration + 60)
        else:
            rc = site.fw.wait()
    except KeyboardInterrupt:
        site.fw.proc.send_signal(signal.SIGINT)
        try:
            site.fw.wait(5)
        except Exception:
            pass
        rc = 0
    except Exception:
        rc = 1
    finally:
        site.stop()
        if broker is not None:
            broker.stop()
    if rc:
        sys.stderr.write("vegw sim: firmware exited with status %s\n" % rc)
    return 0 if rc == 0 else 1
