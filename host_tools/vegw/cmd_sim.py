"""vegw sim: the real firmware under the MicroPython unix port, fed by
simulated devices, publishing to a real Mosquitto.

  vegw sim [--broker HOST:PORT] [--gateway ID] [--vedirect NAME=FILE ...]
           [--config FILE] [--speed X] [--duration SECONDS] [--keep-flash]

With no --broker a Mosquitto is started on a free loopback port (printed).
With no devices: the demo site (BMV-712 "house", MPPT with load output
"solar", Phoenix inverter "inverter" on VE.Direct; SmartShunt "shunt" and
Orion XS "orion" over BLE). --vedirect replays a raw capture as the serial
stream of device NAME at 19200 baud x --speed, looping at the end.
--config FILE runs your config: its VE.Direct devices get generated streams,
its BLE devices simulated adverts (with their keys), and its MQTT section is
pointed at the simulator's broker, plain (TLS off; said on the console).
--gateway overrides the gateway id (default: the config's, else sim1).
--duration stops cleanly: "offline" on the availability topic, queues
flushed, exit 0.

Whatever the exit (clean stop, Ctrl-C, SIGTERM, a failure at start), the
Mosquitto it started is stopped and its /tmp/vegw-sim-*/ directory removed;
--keep-flash keeps the simulated flash image (the gateway's log) and prints
its path.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from . import mqtt_link, vestream
from .sim_demo import DEMO_VEDIRECT, BleDevice, battery_monitor_values
from .simulator import Site

DEFAULT_GATEWAY = "sim1"


def add_arguments(p):
    p.add_argument("--broker", help="HOST:PORT of an MQTT broker (default: start mosquitto on loopback)")
    p.add_argument("--gateway", help="gateway id (default: the config's gateway.id, else %s)" % DEFAULT_GATEWAY)
    p.add_argument("--vedirect", action="append", default=[], metavar="NAME=FILE",
                   help="replay a raw capture as device NAME (repeatable)")
    p.add_argument("--config", help="config file (its devices are simulated; MQTT goes to the simulator's broker)")
    p.add_argument("--speed", type=float, default=1.0, help="stream speed factor (default 1)")
    p.add_argument("--duration", type=float, help="stop cleanly after this many seconds")
    p.add_argument("--keep-flash", action="store_true", help="keep the simulated flash image (its path is printed)")
    p.add_argument("--quiet", action="store_true", help="do not echo the firmware's console")


def _err(msg):
    sys.stderr.write("vegw sim: %s\n" % msg)
    return 2


def _stop_on_term(signum, frame):
    raise KeyboardInterrupt  # SIGTERM/SIGHUP: the same clean stop as Ctrl-C


def _reachable(host, port):
    """None if a TCP connection to the broker opens, else why not, in words."""
    try:
        socket.create_connection((host, port), timeout=3).close()
        return None
    except OSError as e:
        return mqtt_link.describe(e)


def _load_config(args, host, port, local_broker):
    """The user's config, pointed at the simulator's broker. Returns
    (config, note for the console) or raises ValueError with the reason."""
    try:
        with open(args.config, encoding="utf-8") as f:
            config = json.load(f)
    except OSError as e:
        raise ValueError("%s: %s" % (args.config, e.strerror or e))
    except ValueError as e:
        raise ValueError("%s: not valid JSON (%s)" % (args.config, e))
    if not isinstance(config, dict):
        raise ValueError("%s: a config is a JSON object" % args.config)
    g = config.get("gateway") if isinstance(config.get("gateway"), dict) else {}
    config["gateway"] = dict(g, id=args.gateway or g.get("id") or DEFAULT_GATEWAY)
    m = config.get("mqtt") if isinstance(config.get("mqtt"), dict) else {}
    was = "%s:%s%s" % (m.get("host"), m.get("port") or (8883 if m.get("tls") else 1883), " TLS" if m.get("tls") else "")
    m = dict(m, host=host, port=port, tls=False)
    m.pop("ca", None)
    if local_broker:  # the broker started here lets anyone in; no credentials to send
        m.pop("username", None)
        m.pop("password", None)
    config["mqtt"] = m
    devices = config.get("devices") if isinstance(config.get("devices"), list) else []
    config["devices"] = devices
    note = "%s: mqtt %s replaced by the simulator's broker %s:%d (plain, TLS off%s)" % (
        args.config, was, host, port, ", no credentials" if local_broker else "")
    return config, note


def run(args):
    signal.signal(signal.SIGTERM, _stop_on_term)
    signal.signal(signal.SIGHUP, _stop_on_term)
    res = {"broker": None, "site": None, "workdir": None}
    try:
        return _run(args, res)
    except KeyboardInterrupt:
        return 0
    finally:
        _cleanup(args, res)


def _cleanup(args, res):
    """Every exit path: the firmware, the feeds, our Mosquitto, our files."""
    site, broker, workdir = res["site"], res["broker"], res["workdir"]
    if site is not None:
        try:
            site.stop()
        except Exception:  # noqa: BLE001 - stopping must go on to the broker
            pass
    if broker is not None:
        broker.stop()
    if workdir:
        flash = os.path.join(workdir, "flash.bin")
        if args.keep_flash and os.path.exists(flash):
            fd, kept = tempfile.mkstemp(prefix="vegw-flash-", suffix=".bin")
            os.close(fd)
            shutil.move(flash, kept)
            print("vegw sim: flash image kept: %s (read it: vegw logs --from-file %s)" % (kept, kept), flush=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _run(args, res):
    if args.speed <= 0:
        return _err("--speed must be positive")
    if args.broker:
        try:
            host, port = mqtt_link.parse_broker(args.broker)
        except ValueError as e:
            return _err("--broker must be HOST:PORT, got %r (%s)" % (args.broker, e))
        why = _reachable(host, port)
        if why:
            return _err("cannot connect to broker %s:%d: %s" % (host, port, why))
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
    if not args.broker:
        from .broker import Broker

        broker = res["broker"] = Broker()
        try:
            broker.start()
        except Exception as e:  # noqa: BLE001 - one line, and _cleanup stops what did start
            return _err("cannot start mosquitto: %s (install it: apt-get install mosquitto)" % e)
        host, port = "127.0.0.1", broker.port
        print("vegw sim: started mosquitto on %s:%d" % (host, port), flush=True)

    config = None
    ble_devices = None
    if args.config:
        try:
            config, note = _load_config(args, host, port, not args.broker)
        except ValueError as e:
            return _err(str(e))
        print("vegw sim: " + note, flush=True)
        models = [m for _, m in DEMO_VEDIRECT]
        ve = [d for d in config["devices"] if isinstance(d, dict) and d.get("type") == "vedirect"]
        for i, d in enumerate(ve):
            if d.get("name") not in feeds:
                feeds[d.get("name")] = vestream.make(models[i % len(models)], seed=i + 1).second
        # BLE devices of the config: a simulated battery monitor each, sending
        # adverts encrypted with the config's key
        ble_devices = []
        for i, d in enumerate(x for x in config["devices"] if isinstance(x, dict) and x.get("type") == "ble"):
            try:
                ble_devices.append(BleDevice(d["name"], d["mac"], "battery_monitor", d["key"],
                                             battery_monitor_values(i + 1), 0xA389))
            except (KeyError, TypeError, ValueError) as e:
                return _err("%s: BLE device %r cannot be simulated (%s)" % (args.config, d.get("name"), e))
    gateway = args.gateway or DEFAULT_GATEWAY
    res["workdir"] = tempfile.mkdtemp(prefix="vegw-sim-")
    site_kw = dict(gateway=gateway, broker=(host, port), speed=args.speed, duration=args.duration,
                   stdout=sys.stdout if not args.quiet else open(os.devnull, "w"), workdir=res["workdir"])
    if config is not None:
        site = Site(vedirect=feeds, ble=False, config=config, ble_devices=ble_devices, **site_kw)
    else:
        site = Site(vedirect=feeds or None, ble=not feeds, **site_kw)
    res["site"] = site
    gw = site.config["gateway"]["id"]
    prefix = (site.config.get("mqtt") or {}).get("prefix") or "vegw"
    print("vegw sim: gateway %s publishing to %s:%d under %s/%s/#  (watch: vegw monitor --broker %s:%d)"
          % (gw, host, port, prefix, gw, host, port), flush=True)
    try:
        rc = site.fw.wait(args.duration + 60) if args.duration else site.fw.wait()
    except subprocess.TimeoutExpired:
        return _err("the firmware did not stop within 60 s after --duration")
    except KeyboardInterrupt:
        site.fw.proc.send_signal(signal.SIGINT)
        try:
            site.fw.wait(5)
        except Exception:  # noqa: BLE001 - killed by _cleanup
            pass
        return 0
    if rc:
        sys.stderr.write("vegw sim: firmware exited with status %s\n" % rc)
        return 1
    return 0
