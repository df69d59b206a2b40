# Parsers of what a cellular modem says (AT replies and unsolicited result
# codes), pure functions on text lines, and the bounded line splitter the
# bytes go through first. at_modem.py runs the dialogue with them.
from ring import Ring

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_MAX_LINE = const(160)  # longest line kept (+CPSI: is ~100 chars); the rest is cut and counted
_MAX_LINES = const(8)  # complete lines waiting to be consumed; the oldest is dropped and counted

_FINALS = ("OK", "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")
_URC_WORDS = ("RDY", "SMS Ready", "SMS DONE", "PB DONE", "Call Ready", "RING", "*ATREADY", "NORMAL POWER DOWN",
              "POWERED DOWN", "+PDP: DEACT", "SIM REMOVED")
_URC_PREFIX = ("*ATREADY:", "+CPIN:", "+CREG:", "+CGREG:", "+CEREG:", "+CFUN:", "+CMTI:", "+CGEV:", "+CPSI:", "+SIMCARD:",
               "+CTZV:", "*PSUTTZ:", "DST:", "+APP PDP:", "+CSQ:", "+QIND:", "+CLIP:", "+ICCID:")

# CME error codes (3GPP TS 27.007 9.2) the SIM step cares about.


def urc_line(line):
    """True for an unsolicited result code (not the answer to a command)."""
    if line in _URC_WORDS:
        return True
    for p in _URC_PREFIX:
        if line.startswith(p):
            return True
    return False


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


class LineSplitter:
    """Bytes in, text lines out. One preallocated line buffer of _MAX_LINE
    bytes; a ring of _MAX_LINES finished lines. Only printable ASCII is kept
    (everything else is counted as garbage), so decoding cannot fail."""

    def __init__(self):
        self._buf = bytearray(_MAX_LINE)
        self._n = 0
        self._ring = Ring(_MAX_LINES)
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
        if self._ring.put(line) is not None:
            self.dropped_lines += 1

    def pop(self):
        return self._ring.pop()

    def partial(self):
        """The unfinished line (a prompt such as '>' has no line end)."""
        return bytes(self._buf[: self._n]).decode()


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
