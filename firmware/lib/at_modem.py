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
#
# Length: Modem is one state machine over one stream; its steps share the
# line buffer and the result dict (the model table is at_models.py, the
# line parsers at_parse.py).
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
from at_models import MODEL_ORDER, MODELS, TIMEOUTS, detect_model  # noqa: F401 - at_modem.* for its users
from at_parse import (  # noqa: F401 - at_modem.* for its users
    _ACT, LineSplitter, _final, _int, _isint, _solicited, _split, _tech_from_cpsi, csq_to_dbm, parse_cclk, parse_reg,
    reg_name, urc_line,
)


_READ_CHUNK = const(64)  # bytes asked from the stream per read
_MAX_PIN = const(8)  # SIM PINs are 4 to 8 digits

_CME_SIM_NOT_INSERTED = const(10)
_CME_SIM_PIN = const(11)
_CME_SIM_PUK = const(12)
_CME_SIM_FAILURE = const(13)
_CME_SIM_BUSY = const(14)
_CME_SIM_WRONG = const(15)
_CME_BAD_PASSWORD = const(16)
_CME_SIM_NOT_READY = const(515)  # SIMCom: "please wait, init or command processing"


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
        return urc_line(line)

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
