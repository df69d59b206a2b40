"""A simulated cellular modem speaking the AT dialogue, for tests and demos.

    python -m vegw.modem_sim --port 0 --scenario happy [--model sim7600]

listens on 127.0.0.1 (port 0 = any free port), prints `PORT <n>` on stdout,
and answers AT commands on every connection (one SIM per process, so PIN tries
add up across connections, as on a real SIM). `--list` prints the scenarios.

The engine (`SimModem`) is plain code without I/O so the shared tests run the
same scenarios in memory under CPython and MicroPython: feed it the bytes the
host writes, it returns the bytes the modem would answer.
"""
# Length: one simulated modem: its AT dialogue, scenarios and the TCP server
# that carries it; the scenarios are data.
from link_manager import Rng  # one seeded PRNG for the firmware and this simulator

try:
    from vegw.modem_sim_pdp import PdpState
except ImportError:  # the shared tests import this file from host_tools/vegw directly
    from modem_sim_pdp import PdpState

SCENARIOS = {
    "happy": "SIM ready, registered on CREG/CGREG/CEREG, CSQ 20 (-73 dBm), LTE, dial answers CONNECT",
    "no_sim": "AT+CPIN? answers +CME ERROR: 10 (SIM not inserted)",
    "pin": "SIM asks for a PIN; 1234 is right",
    "wrong_pin": "SIM asks for a PIN and rejects every PIN (+CME ERROR: 16); the third locks it (SIM PUK)",
    "puk": "SIM locked: +CPIN: SIM PUK",
    "no_reg": "SIM ready, never registers (stat 2 searching), weak signal",
    "denied": "registration denied (stat 3)",
    "lte_only": "CREG and CGREG say 0 (not registered), CEREG says 1: LTE-only network",
    "roaming": "registered roaming (stat 5) on CEREG only",
    "signal_loss": "registered, then after two signal queries the signal goes (CSQ 99, stat 2, NO SERVICE)",
    "silent": "answers the handshake, then stops answering altogether",
    "dead": "never answers anything",
    "echo_on": "ignores ATE0: every command is echoed",
    "echo_off": "starts with echo off",
    "urc_mid": "unsolicited lines (RDY, SMS Ready, +CREG) in the middle of replies",
    "garbage": "random non-printable bytes and junk lines between and inside replies",
    "no_connect": "registered, but ATD*99# answers NO CARRIER",
    "slow_boot": "ignores the first three AT, then sends RDY and answers",
    "mute_unknown": "like happy, but commands it does not know get no answer at all (not even ERROR)",
    "apn_rejected": "the network attaches only with its default (empty) APN: AT+CGATT=1 with another fails",
}

MODEL_NAMES = {"sim7600": "SIMCOM_SIM7600E-H", "sim7080": "SIM7080", "a7670": "A7670E-LASE"}


class SimModem:
    def __init__(self, scenario="happy", model="sim7600", seed=7, stored_apn=""):
        if scenario not in SCENARIOS:
            raise ValueError("unknown scenario " + scenario)
        self.scenario = scenario
        self.model = model if model in MODEL_NAMES else "sim7600"
        self.rng = Rng(seed)
        self.echo = scenario != "echo_off"
        self.inbuf = b""
        self.commands = []  # every command received, for tests
        self.pin_tries = 0
        self.unlocked = False
        self.locked = scenario == "puk"
        self.csq_queries = 0
        self.at_seen = 0
        self.lost = False
        self.data_mode = False
        # context 1 / attach / CFUN: the bearer keeps the APN of its attach (modem_sim_pdp.py)
        self.pdp = PdpState(stored_apn, ("",)) if scenario == "apn_rejected" else PdpState(stored_apn)

    # ------------------------------------------------------------- output
    def banner(self):
        if self.scenario in ("dead", "slow_boot"):
            return b""
        out = "\r\n*ATREADY: 1\r\n" if self.model == "a7670" else "\r\nRDY\r\n"  # A76XX boot line
        if self.scenario == "urc_mid" or self.scenario == "happy":
            out += "\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n"
        return self._dirty(out.encode())

    def _dirty(self, data):
        if self.scenario != "garbage":
            return data
        out = bytearray()
        for b in data:
            if self.rng.below(6) == 0:
                out.append((0x00, 0xFF, 0x80, 0x1B, 0x07, 0xFE)[self.rng.below(6)])
            out.append(b)
        return bytes(out)

    def receive(self, data):
        """Bytes from the host -> bytes the modem answers."""
        if self.data_mode:
            return b""
        self.inbuf += data
        if len(self.inbuf) > 512:  # a real modem's command buffer overflows too
            self.inbuf = self.inbuf[-512:]
        out = b""
        while True:
            i = self.inbuf.find(b"\r")
            if i < 0:
                break
            raw = self.inbuf[:i]
            self.inbuf = self.inbuf[i + 1:]
            cmd = bytes(b for b in raw if 32 <= b < 127).decode().strip()
            if not cmd:
                continue
            out += self._one(cmd)
        return out

    def _one(self, cmd):
        self.commands.append(cmd)
        sc = self.scenario
        if sc == "dead":
            return b""
        if sc == "silent" and len(self.commands) > 3:
            return b""
        if sc == "slow_boot" and self.at_seen < 3:
            if cmd.upper() == "AT":
                self.at_seen += 1
                if self.at_seen == 3:
                    return b"\r\nRDY\r\n"
            return b""
        echo = (cmd + "\r").encode() if self.echo else b""
        lines, final = self._answer(cmd)
        if final is None:
            return echo
        if cmd.upper() == "ATE0" and sc != "echo_on":
            self.echo = False
        if cmd.upper() == "ATE1":
            self.echo = True
        body = ""
        for ln in lines:
            body += "\r\n" + ln + "\r\n"
        if sc == "urc_mid" and lines:
            urc = ("RDY", "SMS Ready", "+CREG: 1", "+CEREG: 1,\"1A2B\",\"01A2B3C4\",7", "+CPIN: READY")[self.rng.below(5)]
            body += "\r\n" + urc + "\r\n"
        if sc == "garbage" and self.rng.below(3) == 0:
            body += "\r\n#junk~line:" + "x" * (150 + self.rng.below(200)) + "\r\n"
        body += "\r\n" + final + "\r\n"
        if sc == "signal_loss" and self.lost and cmd.upper() == "AT+CSQ":
            body += "\r\n+CEREG: 2\r\n"
        return echo + self._dirty(body.encode())

    # ------------------------------------------------------------ answers
    def _sim_state(self):
        sc = self.scenario
        if sc == "no_sim":
            return "absent"
        if self.locked:
            return "puk"
        if sc in ("pin", "wrong_pin") and not self.unlocked:
            return "pin"
        return "ready"

    def _reg(self, which):
        sc = self.scenario
        if self._sim_state() != "ready" or self.pdp.cfun != 1:
            return 0
        if sc == "no_reg":
            return 2
        if sc == "denied":
            return 3
        if sc == "lte_only":
            return 1 if which == "CEREG" else 0
        if sc == "roaming":
            return 5 if which == "CEREG" else 0
        if sc == "signal_loss" and self.lost:
            return 2
        return 1

    def _csq(self):
        sc = self.scenario
        if self._sim_state() != "ready":
            return 99
        if sc == "signal_loss":
            self.csq_queries += 1
            if self.csq_queries > 2:
                self.lost = True
            return 99 if self.lost else 18
        if sc == "no_reg":
            return 4
        return 20

    def _answer(self, cmd):
        u = cmd.upper()
        if self.scenario == "mute_unknown" and u in ("AT+CMEE=1", "AT+CPSI?", "AT+SPIC", "AT+CGMM", "AT+COPS=3,0"):
            return [], None
        st = self._sim_state()
        if u in ("AT", "ATE0", "ATE1", "AT+CMEE=1", "AT+CMEE=2", "AT+COPS=3,0"):
            return [], "OK"
        if u == "AT+CGMM":
            return [MODEL_NAMES[self.model]], "OK"
        if u == "AT+CGSN":
            return ["867584030123456"], "OK"
        if u == "AT+CPIN?":
            if st == "absent":
                return [], "+CME ERROR: 10"
            return ["+CPIN: " + {"ready": "READY", "pin": "SIM PIN", "puk": "SIM PUK"}[st]], "OK"
        if u.startswith("AT+CPIN="):
            if st == "absent":
                return [], "+CME ERROR: 10"
            if st == "puk":
                return [], "+CME ERROR: 12"
            if st == "ready":
                return [], "ERROR"
            self.pin_tries += 1
            if self.scenario == "pin" and cmd[8:].strip('"') == "1234":
                self.unlocked = True
                return [], "OK"
            if self.pin_tries >= 3:
                self.locked = True
            return [], "+CME ERROR: 16"
        if u == "AT+SPIC":
            left = 0 if self.locked else 3 - self.pin_tries
            return ["+SPIC: %d,10,3,10" % left], "OK"
        if u in ("AT+CICCID", "AT+CCID"):
            if st == "absent":
                return [], "+CME ERROR: 10"
            v = "89640123456789012345"
            return [("+ICCID: " + v) if u == "AT+CICCID" else v], "OK"
        pdp = self.pdp.answer(cmd, u)
        if pdp is not None:
            return pdp
        for which in ("CREG", "CGREG", "CEREG"):
            if u == "AT+" + which + "?":
                if self.model == "sim7080" and which == "CREG" and self.scenario == "lte_only":
                    return [], "ERROR"  # some Cat-M firmware has no circuit-switched registration
                return ["+%s: 0,%d" % (which, self._reg(which))], "OK"
        if u == "AT+CSQ":
            return ["+CSQ: %d,99" % self._csq()], "OK"
        if u == "AT+COPS?":
            if self._reg("CEREG") in (1, 5) or self._reg("CREG") in (1, 5):
                return ['+COPS: 0,0,"One NZ",7'], "OK"
            return ["+COPS: 0"], "OK"
        if u == "AT+CPSI?":
            if self.lost or self._reg("CEREG") not in (1, 5):
                return ["+CPSI: NO SERVICE,Online"], "OK"
            if self.model == "sim7080":
                return ["+CPSI: LTE CAT-M1,Online,530-01,0x5A1E,27447553,196,EUTRAN-BAND28,9410,3,3,-11,-95,-66,12"], "OK"
            return ["+CPSI: LTE,Online,530-01,0x5A1E,187214780,257,EUTRAN-BAND3,1825,5,5,-94,-905,-620,15"], "OK"
        if u == "ATD*99#" or u == "ATD*99***1#":
            if self.scenario == "no_connect" or self._reg("CEREG") not in (1, 5) or not self.pdp.can_dial():
                return [], "NO CARRIER"
            self.data_mode = True
            return [], "CONNECT 115200"
        return [], (None if self.scenario == "mute_unknown" else "ERROR")


# ---------------------------------------------------------------- the program
def main(argv=None):
    import argparse
    import asyncio
    import sys

    ap = argparse.ArgumentParser(prog="python -m vegw.modem_sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal instead (prints PTY <path>)")
    ap.add_argument("--scenario", default="happy", help="one of: " + ", ".join(sorted(SCENARIOS)))
    ap.add_argument("--model", default="sim7600", choices=sorted(MODEL_NAMES))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--list", action="store_true", help="print the scenarios and exit")
    ap.add_argument("--log", default=None, help="append every command received to this file")
    ap.add_argument("--pin-tries", type=int, default=0, help="wrong PINs already entered before we start")
    ap.add_argument("--stored-apn", default="", help="APN context 1 holds at power-up (the modem keeps it in NV)")
    args = ap.parse_args(argv)
    if args.list:
        for k in sorted(SCENARIOS):
            print("%-12s %s" % (k, SCENARIOS[k]))
        return 0
    if args.scenario not in SCENARIOS:
        sys.stderr.write("modem_sim: unknown scenario %r (try --list)\n" % args.scenario)
        return 2
    sim = SimModem(args.scenario, args.model, args.seed, args.stored_apn)
    sim.pin_tries = max(0, args.pin_tries)
    logf = open(args.log, "a") if args.log else None
    rng = Rng(args.seed + 1)

    async def send(writer, data):
        # Split the answer into small random pieces so the reader sees lines
        # cut at arbitrary places, as from a UART.
        i = 0
        while i < len(data):
            n = 1 + rng.below(24)
            writer.write(data[i:i + n])
            await writer.drain()
            i += n
            if rng.below(4) == 0:
                await asyncio.sleep(0.001)

    async def handle(reader, writer):
        sim.data_mode = False
        try:
            await send(writer, sim.banner())
            while True:
                data = await reader.read(256)
                if not data:
                    break
                n0 = len(sim.commands)
                out = sim.receive(data)
                if logf:
                    for c in sim.commands[n0:]:
                        logf.write(c + "\n")
                    logf.flush()
                if out:
                    await send(writer, out)
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the peer may be gone already
                pass

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", args.port)
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write("PORT %d\n" % port)
        sys.stdout.flush()
        async with server:
            await server.serve_forever()

    try:
        if args.pty:
            serve_pty(sim, logf)
        else:
            asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


def serve_pty(sim, logf=None):
    """The same modem on a pseudo-terminal: `vegw modem probe --modem <path>`
    then goes through pyserial like a USB modem would."""
    import os
    import select
    import sys
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    sys.stdout.write("PTY %s\n" % os.ttyname(slave))
    sys.stdout.flush()
    os.write(master, sim.banner())
    while True:
        r, _, _ = select.select([master], [], [], 1.0)
        if not r:
            continue
        try:
            data = os.read(master, 256)
        except OSError:  # no process has the slave open right now
            import time

            time.sleep(0.05)
            continue
        n0 = len(sim.commands)
        out = sim.receive(data)
        if logf:
            for c in sim.commands[n0:]:
                logf.write(c + "\n")
            logf.flush()
        if out:
            os.write(master, out)


if __name__ == "__main__":
    raise SystemExit(main())
