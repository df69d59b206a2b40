"""Packet-domain state of the simulated modem (modem_sim.SimModem): the APN
stored in context 1, the APN the current attach was made with, CGATT and
CFUN. As on a real LTE modem, writing AT+CGDCONT changes only the stored
context; the bearer keeps the APN of the last attach until AT+CGATT=0/1 or
AT+CFUN=0/1, and ATD*99# gets CONNECT only when the bearer's APN is the
stored one and the network accepts it.

The context survives power cycles in a real modem's NV memory: `stored`
is what the modem held before the gateway spoke to it.
"""

class PdpState:
    def __init__(self, stored="", accepted=None):
        # accepted: the APNs (lower case) the simulated network attaches with,
        # None = any; "" is the network's default APN
        self.ctx_apn = stored  # AT+CGDCONT context 1
        self.accepted = accepted
        self.cfun = 1
        self.attach_apn = None
        self.attached = False
        self.attaches = 0  # attach procedures run (the boot's one included)
        self._attach()  # a modem powers up and attaches with what it has stored

    def _attach(self):
        self.attaches += 1
        ok = self.accepted is None or self.ctx_apn.lower() in self.accepted
        self.attached = ok
        self.attach_apn = self.ctx_apn if ok else None
        return ok

    def _detach(self):
        self.attached = False
        self.attach_apn = None

    def can_dial(self):
        return self.cfun == 1 and self.attached and self.attach_apn == self.ctx_apn

    def answer(self, cmd, u):
        """(lines, final) for a PDP/attach command, or None if `cmd` is not one."""
        if u == "AT+CGDCONT?":
            return ['+CGDCONT: 1,"IP","%s","0.0.0.0",0,0' % self.ctx_apn], "OK"
        if u.startswith("AT+CGDCONT=1,"):
            parts = cmd.split(",")
            if len(parts) < 3:
                return [], "ERROR"
            self.ctx_apn = parts[2].strip().strip('"')
            return [], "OK"
        if u.startswith("AT+CGDCONT=") or u.startswith("AT+CGAUTH="):
            return [], "OK"
        if u == "AT+CGATT?":
            return ["+CGATT: %d" % (1 if self.attached else 0)], "OK"
        if u == "AT+CGATT=0":
            self._detach()
            return [], "OK"
        if u == "AT+CGATT=1":
            if self.cfun != 1:
                return [], "+CME ERROR: 30"  # no network service
            if self.attached:
                return [], "OK"  # already attached: nothing happens (27.007)
            return [], ("OK" if self._attach() else "+CME ERROR: 148")  # unspecified GPRS error
        if u == "AT+CFUN?":
            return ["+CFUN: %d" % self.cfun], "OK"
        if u in ("AT+CFUN=0", "AT+CFUN=4"):
            self.cfun = int(u[-1])
            self._detach()
            return [], "OK"
        if u == "AT+CFUN=1":
            if self.cfun != 1:
                self.cfun = 1
                self._attach()
            return [], "OK"
        return None
