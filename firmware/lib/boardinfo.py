# Board pin maps (boards/<name>/board.json): load, validate, and answer the
# questions config validation asks: "may this pin do that job on this board?"
# (`pin_problem`), "may this UART carry data?" (`uart_problem`), and "how do
# these VE.Direct devices share the UARTs that are left?" (`uart_plan`).
#
# A board dict (JSON):
#   name, mcu ("esp32" | "esp32s3" | "esp32c3"), module, flash_mb
#   uarts        UART ids usable for data (UART0 carries the REPL: never listed)
#   repl         {"uart": 0, "tx": 1, "rx": 3}
#   vedirect     [{"port": 1, "uart": 1, "rx": 16, "tx": 17}, ...]
#   spare_rx     extra RX pins for time-sliced VE.Direct devices
#   vedirect_tx_spare  the TX pin a UART gets when its VE.Direct devices have
#                no tx: machine.UART without tx= takes the port's default
#                (UART1: GPIO10, a flash pin on WROOM; UART2: GPIO17, PSRAM
#                on WROVER), which crashes the board. Nothing else may use it.
#   psram        true when the module has PSRAM the image uses (max_devices()
#                and the deploy of .mpy files into /lib depend on it)
#   gps          null or {"rx", "tx", "pps", "wakeup", ...} (a GPS fitted on
#                some variants of the board; its pins take no vegw role)
#   modem        null or {"model", "uart", "rx", "tx", "pwrkey", "power", "dtr", "ri", "reset", ...}
#                (rx/tx as seen from the ESP32: rx receives the modem's TXD)
#   relay, led   null or {"pin": n, "active": 1|0}
#   gpio         {"valid": [...], "input_only": [...], "reserved": {"6": "why", ...},
#                 "strapping": {"12": "why", ...}, "no_idle_high": [12],
#                 "onboard": {"13": "SD card CS", ...}}
# Nothing here raises on a bad board or config: problems come back as strings.
#
# Length: one question (what a board allows a pin, a UART, its RAM); a sixth of it
# documents board.json.

MCUS = {
    # mcu: (number of UARTs, highest GPIO number)
    "esp32": (3, 39),
    "esp32s3": (3, 48),
    "esp32c3": (2, 21),
}

# Roles whose pin the ESP32 drives (an input-only pin cannot do them).
_OUTPUT_WORDS = ("tx", "relay", "led", "pwrkey", "power", "dtr", "reset", "flight", "buzzer")
# Roles on a line that idles high (UART RX from a device): a strap pin that
# must be low at reset (e.g. ESP32 GPIO12, the flash voltage strap) breaks boot.
_IDLE_HIGH_WORDS = ("rx",)

MODEM_ROLES = ("rx", "tx", "pwrkey", "power", "dtr", "ri", "reset", "status", "flight")
GPS_ROLES = ("rx", "tx", "pps", "wakeup")
SPARE_TX_ROLE = "idle TX of VE.Direct UARTs without tx"

# Devices a gateway without PSRAM can hold: the demo site (5 devices) peaks at
# ~176 of 224 KB (64-bit figures, README "Figures"); a device costs its parser,
# values, aggregates and reporter copies, ~6 KB there (estimate), so 8 keep a
# margin. More need PSRAM (cfg_schema refuses them on a board without it).
MAX_DEVICES_NO_PSRAM = 8

_DEFAULT_DWELL_MS = 2000  # time-slice per device: one VE.Direct block is sent every 1 s,
# and a slice that starts mid-block loses that block, so 2 s always holds one whole block


def load(path):
    """Read a board.json; returns (board or None, [problems])."""
    try:
        import json

        with open(path) as f:
            board = json.load(f)
    except OSError:
        return None, ["board file %s not found" % path]
    except ValueError as e:
        return None, ["board file %s is not valid JSON (%s)" % (path, e)]
    return board, validate(board)


def load_board(name, root="boards"):
    """Board by name from the boards folder; returns (board or None, [problems])."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        return None, ["board name %r is not valid" % (name,)]
    return load(root + "/" + name + "/board.json")


def _gpio(board, key):
    g = board.get("gpio") if isinstance(board, dict) else None
    if not isinstance(g, dict):
        return {} if key in ("reserved", "strapping", "onboard") else []
    v = g.get(key)
    if v is None:
        return {} if key in ("reserved", "strapping", "onboard") else []
    return v


def _has_word(role, words):
    for part in role.replace("_", " ").split(" "):
        if part in words:
            return True
    return False


def _is_pin(pin):
    return isinstance(pin, int) and not isinstance(pin, bool)


def board_roles(board):
    """{pin: role} for every pin the board itself wires to something."""
    roles = {}
    m = board.get("modem")
    if isinstance(m, dict):
        for r in MODEM_ROLES:
            p = m.get(r)
            if _is_pin(p):
                roles[p] = "modem " + r
    for key in ("relay", "led"):
        v = board.get(key)
        if isinstance(v, dict) and _is_pin(v.get("pin")):
            roles[v["pin"]] = key
    g = board.get("gps")
    if isinstance(g, dict):
        for r in GPS_ROLES:
            if _is_pin(g.get(r)):
                roles[g[r]] = "GPS " + r
    spare = board.get("vedirect_tx_spare")
    if _is_pin(spare):
        roles.setdefault(spare, SPARE_TX_ROLE)
    onboard = _gpio(board, "onboard")
    if isinstance(onboard, dict):
        for k in onboard:
            if _isdigits(k):
                roles.setdefault(int(k), str(onboard[k]))
    return roles


def _isdigits(s):
    return isinstance(s, str) and len(s) > 0 and s.isdigit()


def pin_problem(board, pin, role):
    """None if `pin` may take `role` ("vedirect rx", "vedirect tx", "relay",
    "led", "modem tx", ...) on this board, else the reason as one sentence."""
    name = board.get("name", "this board") if isinstance(board, dict) else "this board"
    if not _is_pin(pin):
        return "%s: %r is not a GPIO number" % (role, pin)
    reserved = _gpio(board, "reserved")
    if isinstance(reserved, dict) and str(pin) in reserved:
        return "%s: GPIO%d is reserved on %s (%s)" % (role, pin, name, reserved[str(pin)])
    if pin not in _gpio(board, "valid"):
        return "%s: GPIO%d does not exist or is not broken out on %s" % (role, pin, name)
    if _has_word(role, _OUTPUT_WORDS) and pin in _gpio(board, "input_only"):
        return "%s: GPIO%d is input-only and cannot drive an output" % (role, pin)
    if _has_word(role, _IDLE_HIGH_WORDS) and pin in _gpio(board, "no_idle_high"):
        strap = _gpio(board, "strapping")
        why = strap.get(str(pin), "strapping pin") if isinstance(strap, dict) else "strapping pin"
        return "%s: GPIO%d must not be held high at reset (%s); an idle UART line is high" % (role, pin, why)
    owner = board_roles(board).get(pin)
    if owner == SPARE_TX_ROLE and owner != role:
        return "%s: GPIO%d is kept free on %s as vedirect_tx_spare (the TX of UARTs whose devices have no tx)" % (
            role, pin, name)
    if owner is not None and owner != role:
        return "%s: GPIO%d is wired to the %s on %s" % (role, pin, owner, name)
    return None


def pin_warnings(board, pin, role):
    """Soft issues (strapping pins) worth a line in the config check output."""
    out = []
    strap = _gpio(board, "strapping")
    if _is_pin(pin) and isinstance(strap, dict) and str(pin) in strap:
        out.append("%s: GPIO%d is a strapping pin (%s): keep it free of pull-ups/downs at reset" %
                   (role, pin, strap[str(pin)]))
    return out


def has_psram(board):
    return isinstance(board, dict) and board.get("psram") is True


def max_devices(board):
    """Devices the gateway can hold on this board (PSRAM or not)."""
    return 16 if has_psram(board) else MAX_DEVICES_NO_PSRAM


def psram_problem(board, ndevices):
    """None if a config with `ndevices` devices fits this board's RAM, else why not."""
    if board is None or has_psram(board) or ndevices <= MAX_DEVICES_NO_PSRAM:
        return None
    return "%d devices need a board with PSRAM; %s has none (at most %d devices without it)" % (
        ndevices, board.get("name", "this board"), MAX_DEVICES_NO_PSRAM)


def spare_tx_problem(board):
    """None if the board's vedirect_tx_spare is a harmless output pin, else why not."""
    pin = board.get("vedirect_tx_spare") if isinstance(board, dict) else None
    if not isinstance(pin, int) or isinstance(pin, bool):
        return "vedirect_tx_spare must name the GPIO a UART without a VE.Direct tx drives"
    if str(pin) in _gpio(board, "reserved"):
        return "vedirect_tx_spare GPIO%d is reserved (%s)" % (pin, _gpio(board, "reserved")[str(pin)])
    if pin not in _gpio(board, "valid"):
        return "vedirect_tx_spare GPIO%d does not exist or is not broken out" % pin
    if pin in _gpio(board, "input_only"):
        return "vedirect_tx_spare GPIO%d is input-only" % pin
    taken = []
    for port in board.get("vedirect") or []:
        if isinstance(port, dict):
            taken += [port.get("rx"), port.get("tx")]
    taken += list(board.get("spare_rx") or [])
    if pin in taken:
        return "vedirect_tx_spare GPIO%d is also a VE.Direct pin of the board" % pin
    owner = board_roles(board).get(pin)
    # the only role it may share: the ESP32's TX line into a GPS (idle high there too)
    if owner not in (SPARE_TX_ROLE, "GPS tx"):
        return "vedirect_tx_spare GPIO%d is wired to the %s" % (pin, owner)
    return None


def uart_problem(board, uart):
    """None if UART `uart` may carry data on this board, else the reason."""
    if not _is_pin(uart):
        return "uart %r is not a UART number" % (uart,)
    mcu = MCUS.get(board.get("mcu")) if isinstance(board, dict) else None
    n = mcu[0] if mcu else 3
    if uart < 0 or uart >= n:
        return "UART%d does not exist on %s (UART0..UART%d)" % (uart, board.get("mcu", "this chip"), n - 1)
    repl = board.get("repl") or {}
    if uart == repl.get("uart", 0):
        return "UART%d carries the REPL and the boot log; use UART%s" % (
            uart, " or UART".join(str(u) for u in free_uarts(board)) or "1")
    if uart not in (board.get("uarts") or []):
        return "UART%d is not usable for data on %s" % (uart, board.get("name", "this board"))
    m = board.get("modem")
    if isinstance(m, dict) and m.get("uart") == uart:
        return "UART%d talks to the on-board modem" % uart
    return None


def free_uarts(board):
    """UARTs left for VE.Direct: the board's data UARTs minus the modem's."""
    m = board.get("modem")
    mu = m.get("uart") if isinstance(m, dict) else None
    return [u for u in (board.get("uarts") or []) if u != mu]


def uart_plan(board, devices, dwell_ms=_DEFAULT_DWELL_MS):
    """Assign VE.Direct devices ({"name", "rx", "tx"?, "uart"?}) to the free
    UARTs. When devices outnumber UARTs, several RX pins share one UART in
    turn: each device is listened to for `dwell_ms`, so with N devices on a
    UART each is updated about every N * dwell_ms (a device sends a block
    every second; with 1 s slices each would be read ~1 s out of N, but a slice
    starting mid-block loses that block, hence 2 s by default). TX stays on
    the first device of a shared UART (HEX writes reach that device only).
    Returns {"uarts": {uart: [names]}, "update_ms": {name: ms},
    "shared": bool, "problems": [...], "notes": [...]}"""
    free = free_uarts(board)
    plan = {"uarts": {}, "update_ms": {}, "shared": False, "problems": [], "notes": []}  # type: dict
    if not free:
        plan["problems"].append("no UART left for VE.Direct on %s" % board.get("name", "this board"))
        return plan
    for u in free:
        plan["uarts"][u] = []
    auto = []
    for d in devices:
        u = d.get("uart")
        if u is None:
            auto.append(d)
            continue
        why = uart_problem(board, u)
        if why:
            plan["problems"].append("%s: %s" % (d.get("name", "?"), why))
            continue
        plan["uarts"][u].append(d)
    for d in auto:
        best = free[0]
        for u in free:
            if len(plan["uarts"][u]) < len(plan["uarts"][best]):
                best = u
        plan["uarts"][best].append(d)
    out = {}
    for u in plan["uarts"]:
        devs = plan["uarts"][u]
        out[u] = [d.get("name", "?") for d in devs]
        n = len(devs)
        if n > 1:
            plan["shared"] = True
            plan["notes"].append("UART%d is time-sliced across %d devices: each updated every ~%d s" %
                                 (u, n, n * dwell_ms // 1000))
            for d in devs[1:]:
                if d.get("tx") is not None:
                    plan["notes"].append("%s: TX not connected on shared UART%d (read-only)" % (d.get("name", "?"), u))
        for d in devs:
            plan["update_ms"][d.get("name", "?")] = 1000 if n == 1 else n * dwell_ms
    plan["uarts"] = out
    return plan


def validate(board):
    """Every problem of a board dict, as strings; [] when it is sound."""
    p = []
    if not isinstance(board, dict):
        return ["board is not a JSON object"]
    for k in ("name", "mcu", "uarts", "repl", "vedirect", "modem", "relay", "led", "gpio"):
        if k not in board:
            p.append("missing key %r" % k)
    if p:
        return p
    mcu = MCUS.get(board["mcu"])
    if mcu is None:
        return ["unknown mcu %r (known: %s)" % (board["mcu"], ", ".join(sorted(MCUS)))]
    valid = _gpio(board, "valid")
    if not isinstance(valid, list) or not valid:
        return ["gpio.valid must be a non-empty list"]
    for pin in valid:
        if not _is_pin(pin) or pin < 0 or pin > mcu[1]:
            p.append("gpio.valid: %r is not a GPIO of %s" % (pin, board["mcu"]))
    for key in ("input_only", "no_idle_high"):
        for pin in _gpio(board, key):
            if pin not in valid:
                p.append("gpio.%s: GPIO%r not in gpio.valid" % (key, pin))
    for key in ("reserved", "strapping", "onboard"):
        d = _gpio(board, key)
        if not isinstance(d, dict):
            p.append("gpio.%s must be an object {pin: reason}" % key)
            continue
        for k in d:
            if not _isdigits(k) or not isinstance(d[k], str) or not d[k]:
                p.append("gpio.%s: %r needs a pin number and a reason" % (key, k))
    repl = board["repl"]
    if not isinstance(repl, dict) or repl.get("uart") != 0:
        p.append("repl must name UART0 and its pins")
    else:
        for r in ("tx", "rx"):
            if str(repl.get(r)) not in _gpio(board, "reserved"):
                p.append("repl %s GPIO%r must be listed in gpio.reserved" % (r, repl.get(r)))
    uarts = board["uarts"]
    if not isinstance(uarts, list):
        p.append("uarts must be a list")
        uarts = []
    for u in uarts:
        if not _is_pin(u) or u <= 0 or u >= mcu[0]:
            p.append("uarts: %r is not a data UART of %s" % (u, board["mcu"]))
    used = {}

    def claim(pin, role):
        why = pin_problem(board, pin, role)
        if why:
            p.append(why)
        elif pin in used:
            p.append("GPIO%d is used twice: %s and %s" % (pin, used[pin], role))
        used[pin] = role

    m = board["modem"]
    if m is not None:
        if not isinstance(m, dict):
            p.append("modem must be null or an object")
        else:
            if m.get("uart") not in uarts:
                p.append("modem uart %r is not in uarts" % (m.get("uart"),))
            for r in ("rx", "tx", "pwrkey"):
                if not _is_pin(m.get(r)):
                    p.append("modem %s pin missing" % r)
            for r in MODEM_ROLES:
                if m.get(r) is not None:
                    claim(m.get(r), "modem " + r)
    g = board.get("gps")
    if isinstance(g, dict):
        for r in GPS_ROLES:
            if g.get(r) is not None:
                claim(g.get(r), "GPS " + r)
    for key in ("relay", "led"):
        v = board[key]
        if v is not None:
            if not isinstance(v, dict) or not _is_pin(v.get("pin")):
                p.append("%s must be null or {\"pin\": n}" % key)
            else:
                claim(v["pin"], key)
    ports = board["vedirect"]
    if not isinstance(ports, list) or not ports:
        p.append("vedirect must list at least one port")
        ports = []
    for port in ports:
        if not isinstance(port, dict):
            p.append("vedirect port must be an object")
            continue
        why = uart_problem(board, port.get("uart"))
        if why:
            p.append("vedirect port %s: %s" % (port.get("port"), why))
        claim(port.get("rx"), "vedirect rx")
        if port.get("tx") is not None:
            claim(port.get("tx"), "vedirect tx")
    for pin in board.get("spare_rx") or []:
        claim(pin, "vedirect rx")
    why = spare_tx_problem(board)
    if why:
        p.append(why)
    if not isinstance(board.get("psram"), bool):
        p.append("psram must be true or false")
    return p
