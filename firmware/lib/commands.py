# Commands accepted on <prefix>/<gw>/cmd: JSON {"cmd": NAME, ...}. Only the
# names in COMMANDS are ever executed; anything else is refused and counted.
# Those that change the gateway (reboot, log_interval, config_apply) are
# also signed (app.py checks the proof before this runs). Replies go to
# <prefix>/<gw>/cmd/reply through the gateway.
import json

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


COMMANDS = ("ack", "reboot", "status", "log_interval", "logs", "signal", "config_part", "config_apply")
_MIN_REMOTE_INTERVAL = const(60)  # log_interval over MQTT: shorter shrinks the 30-day history
_MAX_EXPORT = const(2000)  # records one {"cmd":"logs"} may ask for (30 days of 5-minute blocks: 8,640)
_DEF_EXPORT = const(200)  # ... when it does not say
_MIN_SIGNAL_S = const(5)  # {"cmd":"signal"} samples the modem's signal this long (antenna commissioning)
_MAX_SIGNAL_S = const(300)


def handle(gw, payload, now_s):
    """A message on <prefix>/<gw>/cmd: JSON {"cmd": NAME, ...}. Only the
    names in COMMANDS are accepted; the reply goes to .../cmd/reply."""
    try:
        msg = json.loads(payload)
        name = msg.get("cmd")
    except Exception:
        msg = None
        name = None
    if name not in COMMANDS:
        gw.counters["commands_refused"] += 1
        gw.reply({"ok": False, "error": "command not allowed", "cmd": str(name)[:32]})
        return None
    gw.counters["commands"] += 1
    if name == "ack":
        rule = msg.get("rule")
        ok = gw.engine is not None and gw.engine.acknowledge(str(rule), now_s)
        if gw.engine is not None:
            gw.drain_events(now_s)
        gw.reply({"ok": bool(ok), "cmd": "ack", "rule": rule})
    elif name == "reboot":
        gw.reboot_requested = True
        gw.reply({"ok": True, "cmd": "reboot"})
    elif name == "status":
        gw.publish_status(now_s, full=True)
        gw.reply({"ok": True, "cmd": "status"})
    elif name == "log_interval":
        v = msg.get("seconds")
        if type(v) is int and _MIN_REMOTE_INTERVAL <= v <= 3600:
            gw.log_interval = v
            gw.reply({"ok": True, "cmd": "log_interval", "seconds": v})
        else:
            gw.reply({"ok": False, "cmd": "log_interval",
                         "error": "seconds must be an integer 60..3600 (shorter would shrink the 30-day "
                                  "flash history; log.interval in the config can go lower)"})
    elif name == "logs":
        # served by the app (it needs I/O); the arguments are checked here
        start = msg.get("from_seq", 0)
        most = msg.get("max", _DEF_EXPORT)
        if type(start) is not int or start < 0 or type(most) is not int or not 1 <= most <= _MAX_EXPORT:
            gw.reply({"ok": False, "cmd": "logs",
                         "error": "from_seq must be an integer >= 0 and max an integer 1..%d" % _MAX_EXPORT})
            return None
        msg["from_seq"] = start
        msg["max"] = most
        return msg
    elif name == "signal":
        # served by the board (a modem's antenna commissioning); checked here
        v = msg.get("seconds")
        if type(v) is not int or not _MIN_SIGNAL_S <= v <= _MAX_SIGNAL_S:
            gw.reply({"ok": False, "cmd": "signal", "error": "seconds must be an integer 5..300"})
            return None
        return msg
    else:
        # config_part, config_apply are served by the app (they need I/O)
        return msg
    return None
