# The APN the modem attaches with (issue 17.6), for at_modem.Modem.
#
# On LTE the default bearer is set up at attach time with the APN that
# context 1 had *then*; writing AT+CGDCONT afterwards changes the stored
# context but not the bearer, so ATD*99# keeps failing (or runs on the wrong
# APN) until the modem re-attaches. Re-attaching costs a detach and a new
# registration, so it is done only when the stored APN differs from the one
# configured: AT+CGDCONT? first, and a healthy attach is left alone.
#
# Why AT+CGATT=0/1 and not AT+CFUN=0/1: CGATT detaches and re-attaches the
# packet domain only (3GPP 27.007 10.1.9, documented in the SIM7500/SIM7600,
# A76XX and SIM7070/SIM7080 AT manuals alike). CFUN=0 switches the radio (and
# on A76XX the SIM interface) off; the SIM then wants its PIN again, and the
# gateway sends a PIN at most once per boot (at_modem.PinGuard).
#
# Timeouts: the SIMCom AT manuals give AT+CGATT a maximum response time of
# 75 s (the 3GPP attach/detach retry timers, 5 x 15 s); TIMEOUTS["attach"].

REATTACH = ("AT+CGATT=0", "AT+CGATT=1")


def stored_apn(lines, cid=1):
    """The APN of context `cid` from the +CGDCONT: lines of AT+CGDCONT?,
    or None when the context is not defined. APNs hold no commas or quotes
    (3GPP 23.003 9.1), so a plain split is enough."""
    want = str(cid)
    for ln in lines or ():
        if not ln.startswith("+CGDCONT:"):
            continue
        parts = ln[9:].split(",")
        if len(parts) >= 3 and parts[0].strip() == want:
            return parts[2].strip().strip('"')
    return None


def same_apn(a, b):
    # APN network identifiers are case-insensitive (3GPP 23.003 9.1);
    # some modems read the stored one back in upper case
    return a is not None and b is not None and a.lower() == b.lower()


def _word(final):
    return final.lower().replace(" ", "_")


async def set_apn(m):
    """Context 1 gets m.apn unless it has it already. Returns "kept",
    "set", or None when the modem refused (result["error"] says why)."""
    final, info = await m.command("AT+CGDCONT?", prefix="+CGDCONT:")
    if final == "OK" and same_apn(stored_apn(info), m.apn):
        m.result["apn"] = "kept"
        return "kept"
    final, _ = await m.command('AT+CGDCONT=1,"IP","' + m.apn + '"')
    if final != "OK":
        m.result["error"] = "cgdcont_" + _word(final)
        return None
    m.result["apn"] = "set"
    return "set"


async def reattach(m):
    """Detach and attach again so the bearer uses the new APN. A failure is
    counted (m.reattach_failures), named in result["attach"] and logged; the
    dialogue goes on (registration and signal are still worth reporting)."""
    for cmd in REATTACH:
        final, _ = await m.command(cmd, m.t["attach"])
        if final != "OK":
            m.reattach_failures += 1
            m.result["attach"] = "failed_" + _word(final)
            if m.log:
                m.log("!", "re-attach after APN change failed: " + cmd + " -> " + final)
            return False
    m.result["attach"] = "reattached"
    return True
