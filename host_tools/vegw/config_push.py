"""`vegw config push`: a new config.json to a running gateway over MQTT.

    vegw config push --broker HOST:PORT --gateway site-042 --fleet-key HEX site-042.json

Validated here first, exactly as `vegw config validate` (same lines, exit 2
on an error: nothing is sent; placeholders are errors here, as for deploy).
Then the file goes in parts on <prefix>/<gw>/cmd, and one apply signed with
the gateway's key (derived from --fleet-key, or --key) names its size and
sha256. The gateway validates it again against its own board, swaps it in,
reboots with it and keeps it only once it is back on the broker healthy;
otherwise it restores the previous config by itself (firmware/lib/cfg_push.py).
Replies come on <prefix>/<gw>/config/status. Exit 0 healthy with the new
config, 1 refused by the gateway (its path and reason printed), 3 rolled
back, 4 no outcome within --timeout, 2 bad input or no broker.
"""
import binascii
import hashlib
import json
import os
import queue
import sys
import time

from . import mqtt_link

PART = 900  # bytes of the file per part: hex-coded in JSON, within the gateway's 2112-byte MQTT buffer


def add_arguments(p):
    mqtt_link.add_arguments(p, required=True)
    p.add_argument("file", metavar="FILE", help="the config.json to push")
    p.add_argument("--gateway", required=True, metavar="ID")
    p.add_argument("--prefix", default="vegw")
    p.add_argument("--board", metavar="NAME", help="board for the pin checks here (default: gateway.board)")
    p.add_argument("--fleet-key", metavar="HEX", default=os.environ.get("VEGW_FLEET_KEY"))
    p.add_argument("--key", metavar="HEX", default=os.environ.get("VEGW_OTA_KEY"), help="the gateway's own key")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for the outcome (the reboot and the health check included)")


def _err(code, msg):
    sys.stderr.write("vegw config push: %s\n" % msg)
    return code


def messages(data, gateway, key, pid=None):
    """The part messages and the signed apply for file bytes `data`."""
    import proof

    pid = pid or "c%d" % int(time.time())
    n = max(1, (len(data) + PART - 1) // PART)
    parts = [{"cmd": "config_part", "id": pid, "part": k, "parts": n,
              "data": binascii.hexlify(data[k * PART:(k + 1) * PART]).decode()} for k in range(n)]
    apply = {"cmd": "config_apply", "id": pid, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
             "gw": gateway, "ctr": int(time.time() * 1000)}
    apply["sig"] = proof.hexsig(key, proof.cmd_text(apply))
    return parts, apply


def run(args):
    from . import cmd_config

    cfg, err = cmd_config.load_json_file(args.file)
    if err:
        return _err(2, err)
    _, errors, warnings, notes = cmd_config.check_config(cfg, args.board)
    errors = list(errors) + [(p, m) for p, m in warnings if "placeholder" in m]
    for n in notes:
        sys.stderr.write("note: %s\n" % n)
    for p, m in errors:
        sys.stderr.write("%s: %s\n" % (p, m))
    if errors:
        return _err(2, "%s: %d error%s: nothing sent" % (args.file, len(errors), "" if len(errors) == 1 else "s"))
    gw_id = (cfg.get("gateway") or {}).get("id")
    if gw_id != args.gateway:
        return _err(2, "%s is the config of gateway %r, not of --gateway %s" % (args.file, gw_id, args.gateway))
    import proof

    try:
        if args.key:
            key = bytes.fromhex(args.key)
        elif args.fleet_key:
            key = proof.derive_key(bytes.fromhex(args.fleet_key), args.gateway)
        else:
            return _err(2, "a config push changes the gateway: give --fleet-key (or --key)")
    except ValueError:
        return _err(2, "--fleet-key / --key must be hex")
    with open(args.file, "rb") as f:
        data = cmd_config.device_config_bytes(f.read(), cfg)
    parts, apply = messages(data, args.gateway, key)
    base = "%s/%s/" % (args.prefix, args.gateway)
    got = queue.Queue()

    def on_message(cl, u, m):
        try:
            got.put((m.topic, json.loads(m.payload)))
        except ValueError:
            pass

    try:
        c = mqtt_link.connect(args, "vegw-config-push",
                              on_connect=lambda cl: cl.subscribe([(base + "config/status", 1), (base + "cmd/reply", 1)]),
                              on_message=on_message)
    except mqtt_link.LinkError as e:
        return _err(2, str(e))
    try:
        time.sleep(0.3)  # the SUBACK first
        end = time.monotonic() + args.timeout
        for m in parts + [apply]:
            c.publish(base + "cmd", json.dumps(m), qos=1).wait_for_publish(10)
        print("vegw config push: %s: sent %d bytes in %d part%s, apply %s"
              % (args.gateway, len(data), len(parts), "" if len(parts) == 1 else "s", apply["id"]))
        while time.monotonic() < end:
            try:
                topic, r = got.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty:
                continue
            if topic.endswith("cmd/reply"):  # the command itself refused (signature, counter)
                if r.get("ok") is False and r.get("cmd") in (None, "config_apply", "config_part"):
                    return _err(1, "refused by %s: %s" % (args.gateway, r.get("error")))
                continue
            if r.get("id") != apply["id"]:
                continue
            state = r.get("state")
            if state in ("part_ok", "received"):
                continue
            if state == "refused":
                return _err(1, "refused by %s: %s: %s" % (args.gateway, r.get("path") or "config.json", r.get("reason")))
            if state == "error":
                return _err(1, "refused by %s: %s" % (args.gateway, r.get("reason")))
            if state == "applied":
                print("vegw config push: %s: applied; rebooting with it" % args.gateway)
            elif state == "trying":
                print("vegw config push: %s: running the new config (boot %s), health check within %s s"
                      % (args.gateway, r.get("boot"), r.get("timeout_s")))
            elif state == "healthy":
                print("vegw config push: %s: healthy with the new config: kept" % args.gateway)
                return 0
            elif state == "rolled_back":
                return _err(3, "%s rolled back to its previous config: %s" % (args.gateway, r.get("reason")))
        return _err(4, "no outcome from %s within %g s (it rolls back by itself if the new config is not healthy)"
                    % (args.gateway, args.timeout))
    finally:
        mqtt_link.close(c)
