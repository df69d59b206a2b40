# The config checks that read more than one field, or the board: MQTT auth
# and TLS, Wi-Fi passwords, the SIM PIN, BLE scan timing, devices against
# the board's pins and UARTs, and the alarm rules against the devices.
# Split from cfg_schema.py (the schema and the per-field checks), which calls
# check() last; boot only, like it (boot_config.py drops both).
try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_RULE_LINE_BASE = const(1)  # alarm_rules.parse_rules numbers lines from 1


def chars_ok(text, allowed):
    for c in text:
        if c not in allowed:
            return c
    return None


def nbytes(s):
    # lengths that matter on the device are UTF-8 bytes (an SSID is 32 bytes)
    return len(s.encode())


def _is_loopback(host):
    return host in ("localhost", "::1") or (isinstance(host, str) and host.startswith("127."))


def check(ctx, c, board):
    m = c["mqtt"]
    if m["port"] is None:
        m["port"] = 8883 if m["tls"] else 1883
    if m["username"] and not m["password"]:
        ctx.err("mqtt.password", "required when mqtt.username is set (no default passwords)")
    if m["password"] and not m["username"]:
        ctx.err("mqtt.username", "required when mqtt.password is set")
    if m["ca"] and not m["tls"]:
        ctx.err("mqtt.ca", "given but mqtt.tls is false; set \"tls\": true or remove ca")
    if m["tls"] and not m["ca"]:
        ctx.warn("mqtt.ca", "TLS without a CA: the link is encrypted but the broker is not verified (anyone on "
                            "the path can pose as it); give the CA that signed the broker's certificate")
    if m["password"] and not m["tls"] and m["host"] and not _is_loopback(m["host"]):
        ctx.warn("mqtt.tls", "password sent in clear text to %s; TLS recommended" % m["host"])
    if m["tls"] and not m["ca"]:
        ctx.warn("mqtt.ca", "TLS without a CA: the server certificate is not checked")
    for i in range(len(c["wifi"])):
        pw = c["wifi"][i]["password"]
        if pw and nbytes(pw) < 8:
            ctx.err("wifi[%d].password" % i, "WPA needs 8 to 63 bytes, got %d (use \"\" for an open network)" % nbytes(pw))
    mo = c["modem"]
    if mo is not None:
        pin = mo["pin"]
        if pin and (len(pin) < 4 or chars_ok(pin, "0123456789") is not None):
            ctx.err("modem.pin", "SIM PIN must be 4 to 8 digits")
    if not c["wifi"] and mo is None:
        ctx.warn("wifi", "no uplink configured (no wifi network and no modem)")
    b = c["ble"]
    if b["scan_window_ms"] is not None and b["scan_interval_ms"] is not None and b["scan_window_ms"] > b["scan_interval_ms"]:
        ctx.err("ble.scan_window_ms", "must not exceed ble.scan_interval_ms (%d)" % b["scan_interval_ms"])
    _cross_devices(ctx, c["devices"], board)
    _check_rules(ctx, c)


def _cross_devices(ctx, devs, board):
    names = {}
    macs = {}
    pins = {}  # pin -> (path, role)
    uarts = {}  # uart -> [names]
    if not devs:
        ctx.warn("devices", "no devices configured")
    if board is not None:
        prob = _psram_problem(board, len(devs))
        if prob:
            ctx.err("devices", prob)
    for i in range(len(devs)):
        d = devs[i]
        p = "devices[%d]" % i
        n = d.get("name")
        if n is not None:
            if n in names:
                ctx.err(p + ".name", "'%s' already used by devices[%d]" % (n, names[n]))
            else:
                names[n] = i
        if d.get("type") == "ble" and d.get("mac"):
            mac = d["mac"]
            if mac in macs:
                ctx.err(p + ".mac", "%s already used by devices[%d]" % (mac, macs[mac]))
            else:
                macs[mac] = i
        if d.get("type") != "vedirect":
            continue
        u = d.get("uart")
        for role in ("rx", "tx"):
            pin = d.get(role)
            if pin is None:
                continue
            if pin in pins:
                q = pins[pin]
                ctx.err(p + "." + role, "GPIO %d already used as %s by %s" % (pin, q[1], q[0]))
            else:
                pins[pin] = (p, role)
            if board is not None:
                prob = _pin_problem(board, pin, "vedirect " + role)
                if prob:
                    ctx.err(p + "." + role, prob)
                for w in _pin_warnings(board, pin, "vedirect " + role):
                    ctx.warn(p + "." + role, w)
        if u is not None:
            if u in uarts:
                uarts[u].append(n)
            else:
                uarts[u] = [n]
            if board is not None:
                prob = _uart_problem(board, u)
                if prob:
                    ctx.err(p + ".uart", prob)
    for u in uarts:
        if len(uarts[u]) > 1:
            ctx.warn("devices", "UART%d time-sliced between %s: each device is read in turn, so updates are slower"
                     % (u, ", ".join([str(x) for x in uarts[u]])))


# Pins, UARTs and RAM per board: boardinfo's checks (one implementation;
# imported when a config is checked against a board, dropped after boot)
def _pin_problem(board, pin, role):
    import boardinfo

    return boardinfo.pin_problem(board, pin, role)


def _psram_problem(board, ndevices):
    import boardinfo

    return boardinfo.psram_problem(board, ndevices)


def _pin_warnings(board, pin, role):
    import boardinfo

    return boardinfo.pin_warnings(board, pin, role)


def _uart_problem(board, uart):
    import boardinfo

    return boardinfo.uart_problem(board, uart)


def _check_rules(ctx, c):
    rules = c["alarms"]["rules"]
    if not rules:
        return
    import alarm_rules

    devnames = [d.get("name") for d in c["devices"] if d.get("name")]
    field_ok = alarm_rules.default_field_ok(devnames)
    try:
        errs = alarm_rules.parse_rules(rules, field_ok)[1]
    except Exception as e:  # a parser bug must not take config loading down
        ctx.err("alarms.rules", "rule parser failed: %s" % e)
        return
    base = _RULE_LINE_BASE
    for pe in errs:
        line, col, msg = pe[0], pe[1], pe[2]
        idx = line - base if isinstance(line, int) else 0
        ctx.err("alarms.rules[%d]" % idx, ("column %d: %s" % (col, msg)) if col else str(msg))
