# AT dialogue with a cellular modem (SIMCom SIM7600, SIM7080G, A7670), shared
# by the firmware (UART) and the host tool `vegw modem probe` (serial port or
# TCP). The code only sees a *stream*:
#
#     async read(n) -> bytes   at least one byte; b"" means the line is closed
#     async write(data)        send all of data
#
# `StreamPair` adapts an asyncio reader/writer pair (MicroPython's
# `asyncio.StreamReader(uart)` is both). Everything the modem says passes
# through one bounded line splitter; lines that are not the answer to the
# command in flight are unsolicited result codes (URCs: RDY, +CPIN: READY,
# SMS Ready, +CREG/+CGREG/+CEREG, ...) and update state instead of confusing
# the reply. Nothing the modem sends can raise: bad bytes are counted.
#
# The steps of `Modem.probe()`: handshake (AT until OK, echo off, numeric
# errors) -> model and IMEI -> SIM (with the PIN rule below) -> ICCID -> APN
# (+ auth; a re-attach only when the stored APN differs, pdp_attach.py) ->
# registration on CREG, CGREG and CEREG -> operator -> signal (CSQ, and
# RSRP/RSRQ/SINR from AT+CPSI?) -> optional dial ATD*99# -> CONNECT.
# After CONNECT the same UART is handed to network.PPP (drivers/modem.py).
#
# PIN safety: a PIN is sent at most once per boot (the `PinGuard` lives at
# module level, i.e. as long as the interpreter). A rejected PIN stops with
# sim = "pin_wrong" and is never retried; a SIM asking for its PUK never gets
# a PIN (three wrong PINs lock a SIM behind a PUK, which needs a site visit).
try:
    from micropython import const
except ImportError:

    def const(x):
        return x


import asyncio
import time

from clock import ticks_add as _add
from clock import ticks_diff as _diff
from clock import ticks_ms as _ticks

import pdp_attach


_MAX_LINE = const(160)  # longest line kept (+CPSI: is ~100 chars); the rest is cut and counted
_MAX_LINES = const(8)  # complete lines waiting to be consumed; the oldest is dropped and counted
_READ_CHUNK = const(64)  # bytes asked from the stream per read
_MAX_PIN = const(8)  # SIM PINs are 4 to 8 digits

# ---------------------------------------------------------------------------
# Model differences, all in one table. Keys: the --model / config names.
#   match      substrings of the AT+CGMM answer that identify the model
#   iccid      (command, reply prefix or None for a bare line)
#   cell       serving-cell command reporting RSRP/RSRQ/SINR, or None
#   cell_scale divisor for RSRQ/RSRP/RSSI in the +CPSI LTE answer
#              (SIM7600/A7670 report tenths of dB, SIM7080 whole dB)
#   sinr       how to turn the +CPSI RSSNR field into SINR dB:
#              "db" (already dB) or "2x-20" (SIM7600 manual: SINR = 2*RSSNR - 20)
#   auth       PDP authentication command for context 1, or None;
#              "%T" = 0 none / 1 PAP / 2 CHAP, "%U" user, "%P" password
#   pin_tries  (command, prefix) reporting PIN tries left; no PIN is sent
#              when fewer than 3 are left (an earlier boot or tool got it wrong)
# Uncertain entries are marked UNVERIFIED: they come from vendor manuals and
# LilyGO examples, not from a modem on the bench.
MODELS = {  # type: dict
    "sim7600": {
        "match": ("SIM7600", "SIM7500"),
        "iccid": ("AT+CICCID", "+ICCID:"),
        "cell": "AT+CPSI?",
        "cell_scale": 10,
        "sinr": "2x-20",  # UNVERIFIED
        "auth": 'AT+CGAUTH=1,%T,"%P","%U"',  # password before user (SIM7500/7600 manual)
        "pin_tries": ("AT+SPIC", "+SPIC:"),  # +SPIC: <pin1 left>,<puk1 left>,<pin2>,<puk2>
    },
    "sim7080": {
        "match": ("SIM7080", "SIM7070", "SIM7000"),
        "iccid": ("AT+CCID", None),
        "cell": "AT+CPSI?",
        "cell_scale": 1,  # UNVERIFIED: Cat-M/NB answers show whole dB
        "sinr": "db",
        "auth": None,  # its own stack uses AT+CNCFG; for PPP, network.PPP does PAP/CHAP
        "pin_tries": ("AT+SPIC", "+SPIC:"),  # UNVERIFIED on SIM7080
    },
    "a7670": {
        "match": ("A7670", "A7672", "A7608", "SIM7670"),
        "iccid": ("AT+CICCID", "+ICCID:"),
        "cell": "AT+CPSI?",
        "cell_scale": 10,  # UNVERIFIED
        "sinr": "db",  # UNVERIFIED
        "auth": 'AT+CGAUTH=1,%T,"%U","%P"',  # UNVERIFIED order (A76XX manual: user, password)
        "pin_tries": ("AT+SPIC", "+SPIC:"),  # UNVERIFIED on A76XX
    },
}
MODEL_ORDER = ("sim7600", "sim7080", "a7670")

# Default timeouts in ms; a caller may override any key.
TIMEOUTS = {
    "cmd": 3000,  # one ordinary command
    "opt": 1000,  # a command we can do without (ATE0, CGMM, CPSI...), and the liveness AT
    "handshake": 15000,  # AT until OK after power-up (RDY takes ~10 s on SIM7600)
    "sim": 10000,  # SIM busy / not ready yet
    "pin": 10000,  # AT+CPIN="...": the SIM itself answers, slowly
    "reg": 90000,  # network registration
    "poll": 2000,  # between registration polls
    "dial": 30000,  # ATD*99# until CONNECT
    "attach": 75000,  # AT+CGATT=0 / =1 each (SIMCom manuals: 75 s max response), pdp_attach.py
    "silent": 2,  # consecutive timed-out commands before giving up ("no_response")
}

_FINALS = ("OK", "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")
_URC_WORDS = ("RDY", "SMS Ready", "SMS DONE", "PB DONE", "Call Ready", "RING", "*ATREADY", "NORMAL POWER DOWN",
              "POWERED DOWN", "+PDP: DEACT", "SIM REMOVED")
_URC_PREFIX = ("*ATREADY:", "+CPIN:", "+CREG:", "+CGREG:", "+CEREG:", "+CFUN:", "+CMTI:", "+CGEV:", "+CPSI:", "+SIMCARD:",
               "+CTZV:", "*PSUTTZ:", "DST:", "+APP PDP:", "+CSQ:", "+QIND:", "+CLIP:", "+ICCID:")

# CME error codes (3GPP TS 27.007 9.2) the SIM step cares about.
_CME_SIM_NOT_INSERTED = const(10)
_CME_SIM_PIN = const(11)
_CME_SIM_PUK = const(12)
_CME_SIM_FAILURE = const(13)
_CME_SIM_BUSY = const(14)
_CME_SIM_WRONG = const(15)
_CME_BAD_PASSWORD = const(16)
_CME_SIM_NOT_READY = const(515)  # SIMCom: "please wait, init or command processing"


def _isint(s):
    s = s.strip()
    if s[:1] == "-":
        s = s[1:]
    return len(s) > 0 and s.isdigit()


def _int(s, default=None):
    return int(s.strip()) if _isint(s) else default


def csq_to_dbm(n):
    """AT+CSQ rssi index -> dBm (3GPP 27.007: -113 + 2n for 0..31; 99 unknown).
    100..191 is the TD-SCDMA range some SIMCom modems report (-116 + n - 100)."""
    if n is None or n == 99 or n < 0:
        return None
    if n <= 31:
        return -113 + 2 * n
    if 100 <= n <= 191:
        return -116 + (n - 100)
    return None


def parse_reg(line):
    """Registration stat from a solicited (+CREG: n,stat[,...]) or unsolicited
    (+CREG: stat[,"lac","ci"[,act]]) line; None if unreadable. The solicited
    form has a bare number second, the URC a quoted area code or nothing."""
    i = line.find(":")
    if i < 0:
        return None
    parts = line[i + 1:].split(",")
    if len(parts) >= 2 and _isint(parts[1]):
        return _int(parts[1])
    return _int(parts[0])


def parse_cclk(line):
    """Unix seconds (UTC) from '+CCLK: "yy/MM/dd,hh:mm:ss±zz"' (zz: quarter
    hours of the zone the network reported, AT+CTZU=1), or None when the
    modem's clock was never set (year 70/80: 1970/1980, or before 2024) or the line is not
    one. Never raises."""
    try:
        i = line.index('"')
        t = line[i + 1:line.index('"', i + 1)]
        date, tm = t.split(",")
        yy, mo, dd = [int(x) for x in date.split("/")]
        sign = 1
        if "+" in tm:
            tm, zz = tm.split("+")
        elif "-" in tm:
            tm, zz = tm.split("-")
            sign = -1
        else:
            zz = "0"
        hh, mi, ss = [int(x) for x in tm.split(":")]
        if not 24 <= yy < 70 or not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 61):
            return None
        y = 2000 + yy
        # days from 1970-01-01 (civil-from-days, Howard Hinnant's algorithm)
        yy2 = y - (1 if mo <= 2 else 0)
        era = yy2 // 400
        yoe = yy2 - era * 400
        doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + dd - 1
        doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
        days = era * 146097 + doe - 719468
        return days * 86400 + hh * 3600 + mi * 60 + ss - sign * int(zz) * 900
    except (ValueError, IndexError):
        return None


def reg_name(stat):
    # 27.007 <stat>: 0 not searching, 1 home, 2 searching, 3 denied, 4 unknown,
    # 5 roaming, 6 home SMS only, 7 roaming SMS only (no data: an APN or a
    # subscription problem, worth telling apart from "searching"), 8 emergency
    if stat == 1:
        return "home"
    if stat == 5:
        return "roaming"
    if stat == 6:
        return "home_sms_only"
    if stat == 7:
        return "roaming_sms_only"
    if stat == 8:
        return "emergency_only"
    if stat == 3:
        return "denied"
    if stat == 2:
        return "searching"
    if stat == 0:
        return "not_searching"
    if stat is None:
        return None
    return "unknown"


def _tech_from_cpsi(mode):
    m = mode.strip().upper()
    if m.startswith("LTE"):
        if "CAT-M" in m:
            return "LTE-M"
        if "NB" in m:
            return "NB-IoT"
        return "LTE"
    if m in ("WCDMA", "HSPA", "UMTS", "TDS-CDMA", "TD-SCDMA", "CDMA", "EVDO"):
        return m
    if m == "GSM":
        return "GSM"
    return None


# 27.007 +COPS <AcT> -> tech name
_ACT = {0: "GSM", 1: "GSM", 2: "WCDMA", 3: "GSM", 4: "WCDMA", 5: "WCDMA", 6: "WCDMA", 7: "LTE", 8: "LTE-M", 9: "NB-IoT"}


def detect_model(cgmm):
    """Model key for an AT+CGMM answer, or None."""
    up = (cgmm or "").upper()
    for key in MODEL_ORDER:
        for m in MODELS[key]["match"]:
            if m in up:
                return key
    return None


class PinGuard:
    """Remembers, for the life of the interpreter (one boot), whether a PIN was
    sent and what came of it. At most one PIN per boot, whatever happens."""

    def __init__(self):
        self.sent = False
        self.result = None  # None, "ok", "wrong", "unknown"


BOOT_PIN_GUARD = PinGuard()


class StreamPair:
    """Stream interface over an asyncio reader and writer (on the board the
    same `asyncio.StreamReader(uart)` object is passed twice)."""

    def __init__(self, reader, writer=None):
        self.r = reader
        self.w = writer if writer is not None else reader

    async def read(self, n):
        return await self.r.read(n)

    async def write(self, data):
        self.w.write(data)
        await self.w.drain()


class LineSplitter:
    """Bytes in, text lines out. One preallocated line buffer of _MAX_LINE
    bytes; a ring of _MAX_LINES finished lines. Only printable ASCII is kept
    (everything else is counted as garbage), so decoding cannot fail."""

    def __init__(self):
        self._buf = bytearray(_MAX_LINE)
        self._n = 0
        self._ring = [None] * _MAX_LINES
        self._head = 0
        self._count = 0
        self.garbage = 0  # non-printable bytes dropped
        self.truncated = 0  # bytes cut from overlong lines
        self.dropped_lines = 0  # finished lines lost because nobody read them in time

    def feed(self, data):
        for b in data:
            if b == 13 or b == 10:
                self._finish()
            elif 32 <= b < 127:
                if self._n < _MAX_LINE:
                    self._buf[self._n] = b
                    self._n += 1
                else:
                    self.truncated += 1
            else:
                self.garbage += 1

    def _finish(self):
        n = self._n
        if not n:
            return
        self._n = 0
        line = bytes(self._buf[:n]).decode().strip()
        if not line:
            return
        if self._count == _MAX_LINES:
            self._head = (self._head + 1) % _MAX_LINES
            self._count -= 1
            self.dropped_lines += 1
        self._ring[(self._head + self._count) % _MAX_LINES] = line
        self._count += 1

    def pop(self):
        if not self._count:
            return None
        line = self._ring[self._head]
        self._ring[self._head] = None
        self._head = (self._head + 1) % _MAX_LINES
        self._count -= 1
        return line

    def partial(self):
        """The unfinished line (a prompt such as '>' has no line end)."""
        return bytes(self._buf[: self._n]).decode()


def new_result(model=None):
    """The `vegw modem probe` contract plus extra keys; null = not known."""
    return {
        "model": model, "sim": None, "registered": False, "operator": None, "tech": None,
        "rssi_dbm": None, "data": None, "rsrp": None, "rsrq": None, "sinr": None,
        "imei": None, "iccid": None, "model_name": None, "reg": None,
        "creg": None, "cgreg": None, "cereg": None, "csq": None, "error": None, "clock_s": None,
    }


class Modem:
    def __init__(self, stream, model=None, pin=None, apn=None, user="", password="", timeouts=None,
                 pin_guard=None):
        self.stream = stream
        self.model = model if model in MODELS else None
        self.pin = pin or None
        self.apn = apn or None
        self.user = user or ""
        self.password = password or ""
        t = dict(TIMEOUTS)
        if timeouts:
            for k in timeouts:
                t[k] = timeouts[k]
        self.t = t
        self.guard = pin_guard if pin_guard is not None else BOOT_PIN_GUARD
        self.lines = LineSplitter()
        self.result = new_result(self.model)
        self.eof = False
        self.silent = 0  # consecutive commands that timed out
        self.urcs = 0  # unsolicited lines seen
        self.sim_urc = None  # last +CPIN: value seen unsolicited
        self.echo_lines = 0
        self.unanswered = 0  # commands that got no final result in time
        self.stale = False  # a command timed out: its late answer may still arrive
        self._deadline = None
        self.log = None  # optional callable(direction, text) for debugging
        self.sampling = None  # (rssi SignalStats, rsrp SignalStats) of sample_signal
        self.reattach_failures = 0  # re-attaches after an APN change that the modem refused

    # ------------------------------------------------------------------ time
    def set_deadline(self, ms_from_now):
        self._deadline = time_add(_ticks(), ms_from_now)

    def _left(self, ms):
        if self._deadline is None:
            return ms
        left = _diff(self._deadline, _ticks())
        return ms if ms < left else left

    def expired(self):
        return self._deadline is not None and _diff(self._deadline, _ticks()) <= 0

    def dead(self):
        return self.eof or self.silent >= self.t["silent"] or self.expired()

    async def _sleep(self, ms):
        ms = self._left(ms)
        if ms > 0:
            await asyncio.sleep(ms / 1000)

    # ----------------------------------------------------------------- lines
    async def _line(self, until):
        """Next line before ticks `until`, or None."""
        while True:
            line = self.lines.pop()
            if line is not None:
                if self.log:
                    self.log("<", line)
                return line
            if self.eof:
                return None
            left = _diff(until, _ticks())
            if left <= 0:
                return None
            try:
                data = await asyncio.wait_for(self.stream.read(_READ_CHUNK), left / 1000)
            except asyncio.TimeoutError:
                return None
            except OSError:
                data = b""
            if not data:
                self.eof = True
            else:
                self.lines.feed(data)

    def _urc(self, line):
        """Take note of an unsolicited line; returns True if it was one."""
        self.urcs += 1
        if line.startswith("+CPIN:"):
            self.sim_urc = line[6:].strip()
        elif line.startswith("+CREG:"):
            self.result["creg"] = parse_reg(line)
        elif line.startswith("+CGREG:"):
            self.result["cgreg"] = parse_reg(line)
        elif line.startswith("+CEREG:"):
            self.result["cereg"] = parse_reg(line)
        return True

    @staticmethod
    def is_urc(line):
        if line in _URC_WORDS:
            return True
        for p in _URC_PREFIX:
            if line.startswith(p):
                return True
        return False

    async def _flush_stale(self):
        # A timed-out command's answer may arrive late; read it away so it is
        # not taken for the next command's answer.
        until = time_add(_ticks(), self._left(200))
        while True:
            line = await self._line(until)
            if line is None:
                break
            if self.is_urc(line):
                self._urc(line)
        self.stale = False

    async def _alive(self):
        """After a command went unanswered: does the modem still answer a
        plain AT? (Some firmware ignores a command it does not know instead
        of saying ERROR; that must not count as a dead modem.)"""
        await self._flush_stale()
        try:
            await self.stream.write(b"AT\r\n")
        except OSError:
            self.eof = True
            return False
        until = time_add(_ticks(), self._left(self.t["opt"]))
        while True:
            line = await self._line(until)
            if line is None:
                self.stale = True
                return False
            if line == "OK":
                return True
            if self.is_urc(line):
                self._urc(line)

    async def command(self, cmd, timeout_ms=None, prefix=None, check=True):
        """Send one command; returns (final, info_lines). final is "OK",
        "ERROR", "CME <n>" (or "CME <text>"), "CONNECT", "NO CARRIER", ...,
        or "TIMEOUT". info_lines: the lines of the answer (with `prefix`, only
        lines starting with it; without, every line that is no URC)."""
        if self.dead():
            return "TIMEOUT", []
        if self.stale:
            await self._flush_stale()
        if timeout_ms is None:
            timeout_ms = self.t["cmd"]
        info = []
        if self.log:
            self.log(">", cmd)
        try:
            await self.stream.write(cmd.encode() + b"\r\n")
        except OSError:
            self.eof = True
            return "TIMEOUT", info
        until = time_add(_ticks(), self._left(timeout_ms))
        while True:
            line = await self._line(until)
            if line is None:
                self.stale = True
                self.unanswered += 1
                if check and not self.eof and not self.expired() and await self._alive():
                    return "TIMEOUT", info
                self.silent += 1
                return "TIMEOUT", info
            if line == cmd:
                self.echo_lines += 1
                continue
            final = _final(line)
            if final is not None:
                self.silent = 0
                return final, info
            if prefix is not None:
                if line.startswith(prefix):
                    info.append(line)
                    if self.is_urc(line):
                        self._urc(line)
                        self.urcs -= 1  # it was the answer, not unsolicited
                else:
                    self._urc(line)
            elif self.is_urc(line):
                self._urc(line)
            else:
                info.append(line)

    # ----------------------------------------------------------------- steps
    async def handshake(self):
        """AT until OK (the modem may still be booting), then echo off and
        numeric error codes. Returns True when the modem answered."""
        until = time_add(_ticks(), self._left(self.t["handshake"]))
        while True:
            per = self.t["cmd"] if self.t["cmd"] < 1000 else 1000
            final, _ = await self.command("AT", per, check=False)
            if final == "OK":
                break
            if self.eof or self.expired() or _diff(until, _ticks()) <= 0:
                self.result["error"] = "closed" if self.eof else "no_response"
                return False
            self.silent = 0  # keep knocking until the handshake timeout
            if final != "TIMEOUT":
                await self._sleep(200)
        await self.command("ATE0", self.t["opt"])
        await self.command("AT+CMEE=1", self.t["opt"])
        return not self.dead()

    async def identify(self):
        final, info = await self.command("AT+CGMM", self.t["opt"])
        if final == "OK" and info:
            name = info[0]
            for line in info:  # a junk line may precede the name
                if detect_model(line) is not None:
                    name = line
                    break
            self.result["model_name"] = name
            if self.model is None:
                self.model = detect_model(name)
        if self.model is None:
            self.model = "sim7600"  # the most common; the table differs little for the probe
            self.result["model_guessed"] = True
        self.result["model"] = self.model
        final, info = await self.command("AT+CGSN", self.t["opt"])
        for line in info:
            if _isint(line):
                self.result["imei"] = line.strip()
                break

    async def _cpin(self):
        """One AT+CPIN? -> "ready", "pin", "puk", "absent", "busy", "other", None (no answer)."""
        final, info = await self.command("AT+CPIN?", prefix="+CPIN:")
        if info:
            v = info[0][6:].strip().upper()
            if v == "READY":
                return "ready"
            if v == "SIM PIN" or v == "PH-SIM PIN":
                return "pin"
            if v == "SIM PUK" or v == "PH-SIM PUK":
                return "puk"
            if v == "NOT INSERTED" or v == "SIM REMOVED" or v == "NO SIM":
                return "absent"
            return "busy"  # NOT READY and friends: ask again
        if final == "TIMEOUT":
            return None
        if final.startswith("CME "):
            code = _int(final[4:])
            txt = final[4:].upper()
            if code in (_CME_SIM_NOT_INSERTED, _CME_SIM_FAILURE) or "NOT INSERTED" in txt or "FAILURE" in txt:
                return "absent"
            if code == _CME_SIM_PIN or txt == "SIM PIN REQUIRED":
                return "pin"
            if code == _CME_SIM_PUK or txt == "SIM PUK REQUIRED":
                return "puk"
            if code == _CME_SIM_WRONG or txt == "SIM WRONG":
                return "absent"
        return "busy"

    async def _cpin_settled(self, ms):
        """AT+CPIN? until it is not busy or `ms` passed."""
        until = time_add(_ticks(), self._left(ms))
        while True:
            st = await self._cpin()
            if st != "busy" or _diff(until, _ticks()) <= 0 or self.dead():
                return st
            await self._sleep(500)

    async def check_sim(self):
        """Sets result["sim"] to ready/absent/pin_required/pin_wrong/puk_required
        (None when the modem stopped answering) and returns it."""
        st = await self._cpin_settled(self.t["sim"])
        sim = self._sim_name(st)
        if st == "pin":
            sim = await self._enter_pin()
        self.result["sim"] = sim
        return sim

    @staticmethod
    def _sim_name(st):
        if st == "ready":
            return "ready"
        if st == "pin":
            return "pin_required"
        if st == "puk":
            return "puk_required"
        if st == "absent" or st == "busy":
            return "absent"  # a SIM that never gets ready is as good as none
        return None

    async def _enter_pin(self):
        g = self.guard
        if g.sent:
            # Never a second PIN in one boot, whatever the first one did.
            return "pin_wrong" if g.result == "wrong" else "pin_required"
        pin = self.pin
        if not pin:
            return "pin_required"
        if not (_isint(pin) and pin[:1] != "-" and 4 <= len(pin) <= _MAX_PIN):
            # A malformed PIN would still cost one of the SIM's three tries.
            self.result["error"] = "pin_format"
            return "pin_required"
        tries = await self._pin_tries()
        if tries is not None:
            self.result["pin_tries"] = tries
            if tries < 3:
                # Someone (an earlier boot, another tool) already used a try:
                # the stored PIN is suspect and the next miss may lock the SIM.
                return "pin_wrong" if tries > 0 else "puk_required"
        g.sent = True
        g.result = "unknown"
        final, _ = await self.command('AT+CPIN="' + pin + '"', self.t["pin"])
        if final == "OK":
            st = await self._cpin_settled(self.t["sim"])
            if st == "ready":
                g.result = "ok"
                return "ready"
            if st == "pin":  # accepted the command but still wants a PIN
                g.result = "wrong"
                return "pin_wrong"
            if st == "puk":
                g.result = "wrong"
                return "puk_required"
            return self._sim_name(st)
        if final == "TIMEOUT":
            return None
        g.result = "wrong"
        st = await self._cpin()
        if st == "puk":
            return "puk_required"
        return "pin_wrong"

    async def _pin_tries(self):
        pt = MODELS[self.model].get("pin_tries")
        if not pt:
            return None
        final, info = await self.command(pt[0], self.t["opt"], prefix=pt[1])
        if final != "OK" or not info:
            return None
        return _int(info[0][len(pt[1]):].split(",")[0])

    async def read_iccid(self):
        cmd, prefix = MODELS[self.model]["iccid"]
        final, info = await self.command(cmd, self.t["opt"], prefix=prefix)
        if final == "OK" and info:
            v = info[0]
            if prefix:
                v = v[len(prefix):]
            v = v.strip().strip('"')
            if v:
                self.result["iccid"] = v

    async def configure_pdp(self):
        """APN for context 1 (re-attaching when it changed) and the model's
        auth command. Returns True if the modem accepted the APN (or there
        was nothing to set)."""
        if not self.apn:
            return True
        for s in (self.apn, self.user, self.password):
            if '"' in s or "\r" in s or "\n" in s:
                self.result["error"] = "apn_format"
                return False
        apn = await pdp_attach.set_apn(self)  # AT+CGDCONT? first: a healthy attach is left alone
        if apn is None:
            return False
        auth = MODELS[self.model]["auth"]
        if auth and (self.user or self.password):
            c = auth.replace("%T", "1" if self.password else "0").replace("%U", self.user).replace("%P", self.password)
            final, _ = await self.command(c)
            if final != "OK":
                self.result["auth"] = "rejected"
        if apn == "set":
            await pdp_attach.reattach(self)  # the bearer keeps the old APN until a new attach
        return True

    async def read_clock(self):
        """The network's time (NITZ) from the modem: AT+CTZU=1 (take the
        zone and time from the network), then AT+CCLK?; result "clock_s" =
        unix seconds UTC, or None when the network never sent it."""
        await self.command("AT+CTZU=1")
        final, info = await self.command("AT+CCLK?", prefix="+CCLK:")
        if final == "OK" and info:
            self.result["clock_s"] = parse_cclk(info[0] if isinstance(info, list) else info)
        return self.result["clock_s"]

    async def poll_registration(self):
        """One round of AT+CREG?, AT+CGREG?, AT+CEREG?; returns True if any of
        them says registered (1 home, 5 roaming). LTE-only networks register
        on CEREG alone; a modem lacking one of the commands answers ERROR."""
        r = self.result
        for key, cmd, prefix in (("creg", "AT+CREG?", "+CREG:"), ("cgreg", "AT+CGREG?", "+CGREG:"),
                                 ("cereg", "AT+CEREG?", "+CEREG:")):
            final, info = await self.command(cmd, prefix=prefix)
            if info:
                r[key] = parse_reg(_solicited(info))
            if self.dead():
                break
        return self._registered()

    def _registered(self):
        r = self.result
        stats = (r["creg"], r["cgreg"], r["cereg"])
        best = None
        for s in stats:
            if s == 1 or s == 5:
                best = s if best is None or s == 1 else best
        if best is None:
            for s in (6, 7, 3, 2):  # SMS only says more than "denied" or "searching"
                if s in stats:
                    best = s
                    break
            else:
                best = stats[2] if stats[2] is not None else (stats[1] if stats[1] is not None else stats[0])
        r["reg"] = reg_name(best)
        r["registered"] = best == 1 or best == 5
        return r["registered"]

    async def wait_registered(self, timeout_ms=None):
        if timeout_ms is None:
            timeout_ms = self.t["reg"]
        until = time_add(_ticks(), self._left(timeout_ms))
        denied = 0
        while True:
            if await self.poll_registration():
                return True
            if self.dead() or _diff(until, _ticks()) <= 0:
                return False
            denied = denied + 1 if self.result["reg"] == "denied" else 0
            if denied >= 3:  # the network said no three times running: report it
                return False
            await self._sleep(min(self.t["poll"], max(0, _diff(until, _ticks()))))

    async def read_operator(self):
        await self.command("AT+COPS=3,0", self.t["opt"])  # long alphanumeric names
        final, info = await self.command("AT+COPS?", prefix="+COPS:")
        if info:
            parts = _split(info[0][6:])
            if len(parts) >= 3 and parts[2]:
                self.result["operator"] = parts[2]
            if len(parts) >= 4 and _isint(parts[3]) and self.result["tech"] is None:
                self.result["tech"] = _ACT.get(_int(parts[3]))

    async def read_signal(self):
        """CSQ (and the model's serving-cell report). Returns rssi dBm or None."""
        r = self.result
        final, info = await self.command("AT+CSQ", prefix="+CSQ:")
        n = None
        if info:
            parts = info[0][5:].split(",")
            n = _int(parts[0])
        r["csq"] = n
        r["rssi_dbm"] = csq_to_dbm(n)
        m = MODELS[self.model]
        if m["cell"] and not self.dead():
            final, info = await self.command(m["cell"], self.t["opt"], prefix="+CPSI:")
            if info:
                self._parse_cpsi(info[0][6:], m)
        return r["rssi_dbm"]

    def _parse_cpsi(self, body, m):
        # +CPSI: <mode>,<op>,<mcc-mnc>,<tac>,<cell>,<pcid>,<band>,<earfcn>,<dlbw>,<ulbw>,<rsrq>,<rsrp>,<rssi>,<rssnr>
        r = self.result
        parts = _split(body)
        tech = _tech_from_cpsi(parts[0]) if parts else None
        if tech is not None:
            r["tech"] = tech
        elif parts and parts[0].strip().upper() == "NO SERVICE":
            r["tech"] = None
        for k in ("rsrp", "rsrq", "sinr"):
            r[k] = None
        if tech in ("LTE", "LTE-M", "NB-IoT") and len(parts) >= 14:
            scale = m["cell_scale"]
            rsrq, rsrp, snr = _int(parts[10]), _int(parts[11]), _int(parts[13])
            if rsrq is not None:
                r["rsrq"] = rsrq / scale if scale != 1 else rsrq
            if rsrp is not None:
                r["rsrp"] = rsrp / scale if scale != 1 else rsrp
            if snr is not None:
                r["sinr"] = 2 * snr - 20 if m["sinr"] == "2x-20" else snr

    async def dial(self):
        """ATD*99# and wait for CONNECT; afterwards the stream carries PPP."""
        final, _ = await self.command("ATD*99#", self.t["dial"])
        if final == "CONNECT":
            self.result["data"] = "connect"
            return True
        self.result["error"] = "dial_" + final.lower().replace(" ", "_")
        return False

    async def probe(self, dial=None):
        """The whole dialogue; returns the result dict (also kept in
        self.result, so a caller that cancels us still has what was learnt).
        dial defaults to "an APN was given"."""
        if dial is None:
            dial = self.apn is not None
        r = self.result
        if not await self.handshake():
            if r["error"] is None or self.eof:
                r["error"] = self.stop_reason()
            return r
        await self.identify()
        sim = await self.check_sim()
        if sim != "ready":
            if sim is None and r["error"] is None:
                r["error"] = self.stop_reason()
            return r
        await self.read_iccid()
        pdp_ok = await self.configure_pdp()
        reg_ms = self.t["reg"]
        if self._deadline is not None:
            # Leave time for operator, signal (and dial) after a registration
            # that never comes: the installer wants the signal figure most then.
            left = _diff(self._deadline, _ticks())
            reserve = left // 4 if left // 4 < 6000 else 6000
            if left - reserve < reg_ms:
                reg_ms = left - reserve
        await self.wait_registered(reg_ms)
        if not self.dead():
            await self.read_operator()
        if not self.dead():
            await self.read_signal()
        if r["registered"] and not self.dead():
            await self.read_clock()  # before dialling: no AT once PPP runs
        if dial and pdp_ok and r["registered"] and not self.dead():
            await self.dial()
        if self.dead() and r["error"] is None:
            r["error"] = self.stop_reason()
        return r

    def stop_reason(self):
        if self.eof:
            return "closed"
        return "timeout" if self.expired() else "no_response"

    async def sample_signal(self, seconds, interval_ms=1000):
        """Antenna commissioning: sample CSQ (and RSRP where reported) for
        `seconds`; returns {"samples", "unknown", "min", "avg", "max"} in dBm
        (plus "rsrp_min/avg/max" when the model reports RSRP)."""
        st = SignalStats()
        rs = SignalStats()
        self.sampling = (st, rs)  # a caller that cancels us can still read these
        until = time_add(_ticks(), int(seconds * 1000))
        while True:
            t0 = _ticks()
            await self.read_signal()
            st.add(self.result["rssi_dbm"])
            rs.add(self.result["rsrp"])
            if self.dead() or _diff(until, _ticks()) <= 0:
                break
            wait = interval_ms - _diff(_ticks(), t0)
            left = _diff(until, _ticks())
            if wait > left:
                wait = left
            if wait > 0:
                await asyncio.sleep(wait / 1000)
        return self.signal_summary()

    def signal_summary(self):
        """min/avg/max so far of the current or last sample_signal()."""
        if self.sampling is None:
            return SignalStats().summary()
        st, rs = self.sampling
        out = st.summary()
        if rs.samples - rs.unknown > 0:
            s = rs.summary()
            out["rsrp_min"], out["rsrp_avg"], out["rsrp_max"] = s["min"], s["avg"], s["max"]
        return out


class SignalStats:
    """Running min/avg/max of dBm samples; None samples count as unknown."""

    def __init__(self):
        self.samples = 0
        self.unknown = 0
        self.lo = None
        self.hi = None
        self.total = 0

    def add(self, dbm):
        self.samples += 1
        if dbm is None:
            self.unknown += 1
            return
        self.total += dbm
        if self.lo is None or dbm < self.lo:
            self.lo = dbm
        if self.hi is None or dbm > self.hi:
            self.hi = dbm

    def summary(self):
        n = self.samples - self.unknown
        avg = None
        if n:
            avg = round(self.total / n, 1)
        return {"samples": self.samples, "unknown": self.unknown, "min": self.lo, "avg": avg, "max": self.hi}


def time_add(t, ms):
    return _add(t, ms)


def _final(line):
    if line in _FINALS:
        return line
    if line.startswith("CONNECT"):
        return "CONNECT"
    if line.startswith("+CME ERROR:"):
        return "CME " + line[11:].strip()
    if line.startswith("+CMS ERROR:"):
        return "CMS " + line[11:].strip()
    return None


def _solicited(lines):
    """Of several +CxREG lines (a URC may come before the answer), the one in
    the solicited form (<n>,<stat>...), else the last."""
    for ln in lines:
        parts = ln[ln.find(":") + 1:].split(",")
        if len(parts) >= 2 and _isint(parts[1]):
            return ln
    return lines[-1]


def _split(body):
    """Split a comma list, honouring double quotes; strips quotes and blanks."""
    out = []
    cur = ""
    q = False
    for ch in body:
        if ch == '"':
            q = not q
        elif ch == "," and not q:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out
