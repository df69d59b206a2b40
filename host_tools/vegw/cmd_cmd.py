"""`vegw cmd`: one command to a gateway over MQTT, and its reply.

    vegw cmd --broker HOST:PORT --gateway site-042 status
    vegw cmd --broker HOST:PORT --gateway site-042 --fleet-key HEX reboot
    vegw cmd --broker HOST:PORT --gateway site-042 --fleet-key HEX log_interval --seconds 300
    vegw cmd --broker HOST:PORT --gateway site-042 ack --rule low_bank

Commands that change the gateway (reboot, log_interval) are signed with the
gateway's own key (derived from --fleet-key, or --key), naming it and a
counter it has not seen; the others rely on the broker's ACL. Prints the
reply JSON; exit 0 when it says ok, 1 when the gateway refused, 2 for bad
input or no broker, 4 when no reply came within --timeout.
"""
import json
import os
import queue
import sys
import time

from . import mqtt_link

SIGNED = ("reboot", "log_interval")


def add_arguments(p):
    mqtt_link.add_arguments(p, required=True)
    p.add_argument("--gateway", required=True, metavar="ID")
    p.add_argument("--prefix", default="vegw")
    p.add_argument("--fleet-key", metavar="HEX", default=os.environ.get("VEGW_FLEET_KEY"))
    p.add_argument("--key", metavar="HEX", default=os.environ.get("VEGW_OTA_KEY"), help="the gateway's own key")
    p.add_argument("--seconds", type=int, help="log_interval: 60..3600")
    p.add_argument("--rule", help="ack: the rule to acknowledge")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("name", choices=("status", "reboot", "log_interval", "ack", "signal"))


def _err(code, msg):
    sys.stderr.write("vegw cmd: %s\n" % msg)
    return code


def message(args):
    """The command dict, signed when it changes the gateway."""
    msg = {"cmd": args.name}
    if args.seconds is not None:
        msg["seconds"] = args.seconds
    if args.rule is not None:
        msg["rule"] = args.rule
    if args.name in SIGNED:
        import proof

        if args.key:
            key = bytes.fromhex(args.key)
        elif args.fleet_key:
            key = proof.derive_key(bytes.fromhex(args.fleet_key), args.gateway)
        else:
            raise ValueError("%s changes the gateway: give --fleet-key (or --key)" % args.name)
        msg["gw"] = args.gateway
        msg["ctr"] = int(time.time() * 1000)  # above any earlier one from this clock
        msg["sig"] = proof.hexsig(key, proof.cmd_text(msg))
    return msg


def run(args):
    try:
        msg = message(args)
    except ValueError as e:
        return _err(2, str(e))
    base = "%s/%s/" % (args.prefix, args.gateway)
    got = queue.Queue()
    try:
        c = mqtt_link.connect(args, "vegw-cmd", on_connect=lambda cl: cl.subscribe(base + "cmd/reply", 1),
                              on_message=lambda cl, u, m: got.put(m.payload))
    except mqtt_link.LinkError as e:
        return _err(2, str(e))
    try:
        time.sleep(0.2)  # the SUBACK first
        c.publish(base + "cmd", json.dumps(msg), qos=1).wait_for_publish(5)
        end = time.monotonic() + args.timeout
        while time.monotonic() < end:
            try:
                reply = json.loads(got.get(timeout=end - time.monotonic()))
            except (queue.Empty, ValueError):
                continue
            print(json.dumps(reply))
            return 0 if reply.get("ok") else 1
        return _err(4, "no reply from %s within %g s" % (args.gateway, args.timeout))
    finally:
        mqtt_link.close(c)
