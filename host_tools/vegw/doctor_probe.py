# vegw doctor, device side. `vegw doctor` (cmd_doctor.py) sends this file over
# the raw REPL to a board whose gateway it has just stopped, then calls
#     setup({...options...})          once
#     check("uart")                   once per check
# Each check prints one line the host parses:
#     ("name", "ok" | "warn" | "fail" | "skip", "what was found", "what to do")
# It runs on MicroPython only (the board; the unix port in the tests). Nothing
# here writes to flash; every UART or radio it opens is released again.
# Hardware modules are imported by name through _mod(): options["modules"]
# may map a name to another module (the tests' stand-ins for the unix port).
#
# Length: one file sent whole to a board over the raw REPL: every check it
# runs there must be in it.
import gc
import json
import sys
import time

_OPT = {}
_HW = {}
_CFG = {}
_BOARD = {}


def setup(opt):
    global _CFG, _BOARD
    _OPT.clear()
    _OPT.update(opt)
    _HW.clear()
    _CFG = _load("config.json") or {}
    _BOARD = _load("board.json") or {}


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _mod(name):
    if name not in _HW:
        try:
            _HW[name] = __import__(_OPT.get("modules", {}).get(name, name))
        except ImportError:
            _HW[name] = None
    return _HW[name]


def _out(name, status, detail, hint=""):
    print(repr((name, status, detail, hint)))


def check(name):
    fn = globals().get("c_" + name.split(" ")[0])
    if fn is None:
        _out(name, "skip", "unknown check")
        return
    try:
        fn()
    except Exception as e:  # a check that breaks says so and the next one runs
        _out(name, "fail", "the check itself failed: %s: %s" % (type(e).__name__, e),
             "report this with the output of `vegw doctor`")
    gc.collect()


def _flash_hint():
    return "flash the vegw image: vegw flash --port PORT --board %s" % _BOARD.get("name", "NAME")


# ---- firmware, memory, partitions, clock ------------------------------------
def c_firmware():
    impl = sys.implementation
    ver = tuple(impl.version[:3])
    text = "MicroPython %d.%d.%d" % ver
    machine = getattr(impl, "_machine", sys.platform)
    name = _BOARD.get("name")
    if ver < tuple(_OPT.get("min_version", (1, 27))):
        return _out("firmware", "fail", "%s (%s): vegw needs %d.%d or later" % ((text, machine) + tuple(_OPT.get("min_version", (1, 27))[:2])),
                    _flash_hint())
    if not name:
        return _out("firmware", "fail", "%s (%s); no /board.json on the board" % (text, machine),
                    "upload it: vegw flash --upload-only --port PORT --board NAME --config site.json")
    if ("vegw " + name) not in machine:
        return _out("firmware", "warn", "%s (%s), not the vegw %s image" % (text, machine, name),
                    "stock firmware runs vegw only from /lib files on a board with PSRAM; " + _flash_hint())
    _out("firmware", "ok", "%s, %s" % (text, machine))


def c_memory():
    gc.collect()
    free = gc.mem_free()
    total = free + gc.mem_alloc()
    esp32 = _mod("esp32")
    if esp32 is None:
        return _out("memory", "fail", "Python heap %d KB free of %d KB; no esp32 module" % (free // 1024, total // 1024),
                    "this is not an ESP32 MicroPython firmware: " + _flash_hint())
    regions = esp32.idf_heap_info(esp32.HEAP_DATA)
    idf_free = 0
    largest = 0
    big = 0
    for r in regions:  # (total, free, largest free block, minimum free seen)
        idf_free += r[1]
        largest = max(largest, r[2])
        if r[0] > 1024 * 1024:
            big += r[0]
    psram = big > 0 or total > 1024 * 1024
    text = "PSRAM %s; Python heap %d KB free of %d KB; IDF heap %d KB free (largest block %d KB)" % (
        "yes" if psram else "none", free // 1024, total // 1024, idf_free // 1024, largest // 1024)
    want = _BOARD.get("psram")
    if want is True and not psram:
        return _out("memory", "fail", text + "; board.json says PSRAM",
                    "a module without PSRAM or an image without SPIRAM: use the board file that matches, or " + _flash_hint())
    if largest < _OPT.get("idf_largest_min", 16384):
        # a TLS handshake allocates blocks of ~16 KB from the IDF heap (mbedTLS buffers)
        return _out("memory", "warn", text, "little IDF heap left for TLS: fewer BLE devices, or a board with PSRAM")
    _out("memory", "ok", text)


def c_partitions():
    esp32 = _mod("esp32")
    if esp32 is None:
        return _out("partitions", "skip", "no esp32 module")
    P = esp32.Partition
    have = {}
    for p in P.find(P.TYPE_APP) + P.find(P.TYPE_DATA):
        info = p.info()  # (type, subtype, address, size, label, encrypted)
        have[info[4]] = (info[2], info[3])
    run = P(P.RUNNING).info()
    missing = []
    moved = []
    for label, off, size in _OPT.get("table", ()):
        got = have.get(label)
        if got is None:
            missing.append(label)
        elif got != (off, size):
            moved.append("%s at 0x%x+0x%x (want 0x%x+0x%x)" % (label, got[0], got[1], off, size))
    text = "running app '%s' at 0x%x, slot %d KB; %s" % (run[4], run[2], run[3] // 1024, ", ".join(sorted(have)))
    if missing or moved:
        return _out("partitions", "fail", text + "; differs from the board's partitions.csv: " +
                    ", ".join(["no " + m for m in missing] + moved),
                    "without vegwlog the log falls back to files; " + _flash_hint() + " (it erases the flash)")
    _out("partitions", "ok", text)


def c_clock():
    t = time.gmtime(time.time())
    text = "UTC %04d-%02d-%02d %02d:%02d:%02d" % t[:6]
    if t[0] < 2024:
        return _out("clock", "fail", text + ": not set since power-on",
                    "the gateway sets it from NTP (Wi-Fi) or the modem once its uplink is up; TLS fails until then")
    _out("clock", "ok", text)


# ---- VE.Direct UARTs ----------------------------------------------------------
def ve_blocks(buf, n):
    """(blocks with a valid checksum, blocks with a bad one) in buf[:n]; the
    text before the first checksum line is a partial block and is skipped.
    A block sums to 0 mod 256 over its bytes, its checksum byte included;
    HEX frames (':' .. '\\n') between lines or blocks do not count."""
    good = bad = 0
    total = 0
    started = False
    edge = True  # at a line start or right after a checksum byte
    i = 0
    key = b"Checksum\t"
    while i < n:
        c = buf[i]
        if c == 0x3A and edge:  # ':' where a line or a block starts: a HEX frame
            while i < n and buf[i] != 0x0A:
                i += 1
            i += 1
            continue
        edge = c == 0x0A
        total = (total + c) & 0xFF
        if c == 0x09 and i >= 8 and buf[i - 8:i + 1] == key and i + 1 < n:
            total = (total + buf[i + 1]) & 0xFF
            if started:
                if total == 0:
                    good += 1
                else:
                    bad += 1
            started = True
            total = 0
            edge = True
            i += 2
            continue
        i += 1
    return good, bad


def c_uart():
    devs = [d for d in _CFG.get("devices") or () if d.get("type") == "vedirect"]
    if not devs:
        return _out("uart", "skip", "no VE.Direct device in config.json")
    machine = _mod("machine")
    if machine is None or not hasattr(machine, "UART"):
        return _out("uart", "skip", "no machine.UART on this firmware")
    spare = _BOARD.get("vedirect_tx_spare")
    listen = _OPT.get("listen_ms", 2500)
    buf = bytearray(2048)
    for d in devs:
        name = "uart " + d.get("name", "?")
        tx = d.get("tx")
        txt = "tx=%s" % tx
        if tx is None:
            if spare is None:
                _out(name, "fail", "no tx in config.json and no vedirect_tx_spare in board.json",
                     "a UART without an explicit TX pin takes a flash or PSRAM pin: fix board.json")
                continue
            tx = spare
            txt = "tx=%d (spare)" % tx
        where = "UART%d rx=%d %s" % (d.get("uart"), d.get("rx"), txt)
        u = machine.UART(d.get("uart"), baudrate=19200, rx=d.get("rx"), tx=tx, rxbuf=1024, timeout=0)
        n = 0
        end = time.ticks_add(time.ticks_ms(), listen)
        try:
            while time.ticks_diff(end, time.ticks_ms()) > 0 and n < len(buf):
                got = u.readinto(memoryview(buf)[n:])
                if got:
                    n += got
                else:
                    time.sleep_ms(20)
        finally:
            u.deinit()
        good, bad = ve_blocks(buf, n)
        text = "%s: %d bytes in %.1f s, %d blocks with a valid checksum, %d bad" % (where, n, listen / 1000, good, bad)
        if n == 0:
            _out(name, "fail", text, "nothing arrives: the device's TX to GPIO%d, GND to GND, device switched on" % d.get("rx"))
        elif good == 0:
            _out(name, "fail", text, "bytes but no valid block: VE.Direct is 19200 8N1; check GND and the signal level (3.3 V)")
        elif bad:
            _out(name, "warn", text, "some blocks corrupted: shorten or shield the cable, check GND")
        else:
            _out(name, "ok", text)


# ---- BLE ------------------------------------------------------------------------
def c_ble():
    want = {}
    for d in _CFG.get("devices") or ():
        if d.get("type") == "ble" and d.get("mac"):
            want[d["mac"].upper().replace("-", ":")] = d.get("name", "?")
    if not want:
        return _out("ble", "skip", "no BLE device in config.json")
    bt = _mod("bluetooth")
    if bt is None:
        return _out("ble", "fail", "no bluetooth module on this firmware", _flash_hint())
    seen = {}
    done = []

    def irq(event, data):
        if event == 5:  # _IRQ_SCAN_RESULT: addr_type, addr, adv_type, rssi, adv_data
            a = bytes(data[1])
            mac = ":".join("%02X" % b for b in a)
            if mac in want:
                seen[mac] = data[3]
        elif event == 6:  # _IRQ_SCAN_DONE
            done.append(1)

    ble = bt.BLE()
    was_active = ble.active()
    ble.active(True)
    ble.irq(irq)
    ms = _OPT.get("scan_ms", 5000)
    ble.gap_scan(ms, 100000, 100000, False)
    end = time.ticks_add(time.ticks_ms(), ms + 2000)
    while not done and time.ticks_diff(end, time.ticks_ms()) > 0:
        time.sleep_ms(50)
    ble.gap_scan(None)
    ble.irq(None)
    if not was_active:
        ble.active(False)
    got = ["%s %d dBm" % (want[m], seen[m]) for m in sorted(seen)]
    lost = ["%s %s" % (want[m], m) for m in sorted(want) if m not in seen]
    text = "saw %d of %d configured MACs in %.1f s%s" % (len(seen), len(want), ms / 1000, (": " + ", ".join(got)) if got else "")
    if lost:
        return _out("ble", "fail", text + "; not seen: " + ", ".join(lost),
                    "turn on Instant readout in VictronConnect (Settings > Product info), check the MAC, move within ~10 m")
    _out("ble", "ok", text)


# ---- Wi-Fi ------------------------------------------------------------------------
_WIFI_WHY = {201: "no such network in range", 202: "wrong password", 203: "association failed",
             204: "handshake timed out", 200: "beacon timeout (signal lost)"}


def c_wifi():
    nets = _CFG.get("wifi") or ()
    if not nets:
        return _out("wifi", "skip", "no wifi network in config.json")
    network = _mod("network")
    if network is None:
        return _out("wifi", "fail", "no network module on this firmware", _flash_hint())
    w = network.WLAN(network.STA_IF)
    w.active(True)
    why = ""
    if not w.isconnected():
        for n in nets:
            w.connect(n.get("ssid"), n.get("password", ""))
            end = time.ticks_add(time.ticks_ms(), _OPT.get("wifi_ms", 15000))
            while not w.isconnected() and time.ticks_diff(end, time.ticks_ms()) > 0:
                s = w.status()
                if s in _WIFI_WHY and s != 200:
                    break
                time.sleep_ms(200)
            if w.isconnected():
                break
            s = w.status()
            why = "%s: %s" % (n.get("ssid"), _WIFI_WHY.get(s, "status %s" % s))
            w.disconnect()
    if not w.isconnected():
        return _out("wifi", "fail", "not associated (" + why + ")",
                    "check ssid/password in config.json; 2.4 GHz only; move the board closer to the access point")
    rssi = w.status("rssi")
    text = "associated to %s, RSSI %d dBm, IP %s" % (w.config("ssid"), rssi, w.ifconfig()[0])
    if rssi < -80:
        return _out("wifi", "warn", text, "weak signal: an external antenna or a closer access point")
    _out("wifi", "ok", text)


def c_broker():
    m = _CFG.get("mqtt") or {}
    network = _mod("network")
    if not m.get("host") or network is None or not network.WLAN(network.STA_IF).isconnected():
        return _out("broker", "skip", "needs Wi-Fi up (over cellular the gateway resolves names itself)")
    import socket

    port = m.get("port") or (8883 if m.get("tls") else 1883)
    try:
        ai = socket.getaddrinfo(m["host"], port)[0][-1]
    except OSError as e:
        return _out("broker", "fail", "cannot resolve %s (%s)" % (m["host"], e), "check mqtt.host and the network's DNS")
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(ai)
    except OSError as e:
        return _out("broker", "fail", "TCP to %s:%d from the board failed (%s)" % (m["host"], port, e),
                    "broker down, wrong port, or a firewall between the board and the broker")
    finally:
        s.close()
    _out("broker", "ok", "TCP to %s:%d from the board" % (m["host"], port))


# ---- modem ------------------------------------------------------------------------
def _at(u, cmd, ms=1000):
    u.write(cmd + "\r\n")
    out = b""
    end = time.ticks_add(time.ticks_ms(), ms)
    while time.ticks_diff(end, time.ticks_ms()) > 0:
        got = u.read()
        if got:
            out += got
            if b"OK\r\n" in out or b"ERROR" in out:
                break
        else:
            time.sleep_ms(20)
    return out.decode("ascii", "replace") if hasattr(out, "decode") else str(out)


def _field(text, tag):
    i = text.find(tag)
    if i < 0:
        return None
    return text[i + len(tag):].split("\r")[0].strip()


_REG = {"0": "not registered, not searching", "1": "registered (home)", "2": "searching", "3": "registration denied",
        "4": "unknown", "5": "registered (roaming)", "6": "registered for SMS only (home)",
        "7": "registered for SMS only (roaming)"}


def c_modem():
    mb = _BOARD.get("modem")
    if not mb:
        return _out("modem", "skip", "no modem on this board")
    if not _CFG.get("modem"):
        return _out("modem", "skip", "no modem section in config.json")
    machine = _mod("machine")
    if machine is None or not hasattr(machine, "UART"):
        return _out("modem", "skip", "no machine.UART on this firmware")
    where = "UART%d rx=%d tx=%d" % (mb["uart"], mb["rx"], mb["tx"])
    u = machine.UART(mb["uart"], baudrate=mb.get("baud", 115200), rx=mb["rx"], tx=mb["tx"], timeout=0)
    try:
        r = ""
        for _ in range(3):
            r = _at(u, "AT", 500)
            if "OK" in r:
                break
        if "OK" not in r:
            hint = ("the gateway powers the modem at boot: power-cycle the board and run doctor again; a modem the "
                    "gateway had online (PPP data mode) does not answer AT: run doctor before it dials")
            if "sim7600" in mb.get("model", ""):
                hint += "; DIP switches P1 and P2 ON, P4 OFF"
            return _out("modem", "fail", "no answer to AT on " + where, hint)
        pin = _field(_at(u, "AT+CPIN?"), "+CPIN:")
        if pin != "READY":
            return _out("modem", "fail", "modem answers; SIM: %s" % (pin or "not detected"),
                        "insert the SIM (power off first); a locked SIM needs modem.pin in config.json")
        reg = None
        for cmd, tag in (("AT+CEREG?", "+CEREG:"), ("AT+CREG?", "+CREG:")):
            v = _field(_at(u, cmd), tag)
            if v:
                stat = v.split(",")[1].strip() if "," in v else v
                if reg is None or stat in ("1", "5"):
                    reg = stat
        csq = _field(_at(u, "AT+CSQ"), "+CSQ:")
        rssi = None
        if csq and csq.split(",")[0].strip().isdigit():
            n = int(csq.split(",")[0])
            rssi = None if n == 99 else -113 + 2 * n
        sig = "signal unknown" if rssi is None else "signal %d dBm" % rssi
        text = "SIM ready, %s, %s" % (_REG.get(reg, "registration unknown"), sig)
        if reg not in ("1", "5"):
            return _out("modem", "fail", text, "SMS-only or denied: the SIM needs a data plan; check the antenna and coverage"
                        if reg in ("3", "6", "7") else "wait a minute (first registration) and check the antenna")
        if rssi is not None and rssi < -105:
            return _out("modem", "warn", text, "weak signal: check the antenna (main port) and its placement")
        _out("modem", "ok", text)
    finally:
        u.deinit()


# ---- flash log ----------------------------------------------------------------------
def _u32(b, o):
    return b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24


def c_flashlog():
    esp32 = _mod("esp32")
    if esp32 is None:
        return _out("flashlog", "skip", "no esp32 module")
    found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vegwlog")
    if not found:
        return _out("flashlog", "warn", "no vegwlog partition: the log lives in littlefs files (stock firmware)",
                    _flash_hint())
    p = found[0]
    nblk = p.ioctl(4, 0)
    hdr = bytearray(20)
    used = erased = foreign = 0
    head = None
    wear = 0
    for i in range(2, nblk):
        p.readblocks(i, hdr)
        m = _u32(hdr, 0)
        if m == 0x4C574756:  # "VGWL"
            used += 1
            seq = _u32(hdr, 4)
            head = seq if head is None or (seq - head) & 0x80000000 == 0 else head
            wear = max(wear, _u32(hdr, 12))
        elif m == 0xFFFFFFFF:
            erased += 1
        else:
            foreign += 1
    try:
        from binascii import crc32
    except ImportError:
        crc32 = None
    cursor = None
    gen = -1
    slot = bytearray(8)
    for i in (0, 1):  # cursor sectors: newest generation, its last written slot
        p.readblocks(i, hdr)
        if _u32(hdr, 0) != 0x4D574756 or _u32(hdr, 4) <= gen:
            continue
        gen = _u32(hdr, 4)
        off = 16
        while off + 8 <= 4096:
            p.readblocks(i, slot, off)
            if _u32(slot, 0) == 0xFFFFFFFF and _u32(slot, 4) == 0xFFFFFFFF:
                break  # slots are written in order: the rest are blank
            if crc32 is None or _u32(slot, 4) == crc32(slot[:4]) ^ 0x5A5A5A5A:
                cursor = _u32(slot, 0)  # a torn slot (bad CRC) is skipped, as flashlog does
            off += 8
    text = "%d of %d log sectors in use, %d erased; upload cursor %s; wear: at most %d erases per sector" % (
        used, nblk - 2, erased, "none yet" if cursor is None else "at seq %d" % cursor, wear)
    if foreign:
        return _out("flashlog", "warn", text + "; %d sectors hold other data" % foreign,
                    "left from an older layout: " + _flash_hint() + " (it erases the flash)")
    _out("flashlog", "ok", text)
