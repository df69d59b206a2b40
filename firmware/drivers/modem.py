# Cellular modem hardware: power it up with PWRKEY, open its UART with a big
# receive buffer, run the shared AT dialogue (lib/at_modem.py) up to CONNECT,
# then hand the same UART to network.PPP (MicroPython v1.27 or later: PPP
# takes a UART from v1.26, and v1.27 fixed crashes on disconnect). PPP.connect
# makes PPP lwIP's default route and its peer's DNS the global one; the link
# supervisor (lib/route_plan.py) keeps route and DNS on the active link.
#
#   hw = ModemHW(board["modem"])          # pins from boards/<name>/board.json
#   await hw.power_on()
#   res = await hw.connect(cfg["modem"])  # the probe result dict; PPP up if data == "connect"
#
# PPP input is processed from a scheduled callback: keep loop latency low, and
# the rxbuf large (4 KB is ~0.35 s of 115200 baud).
import asyncio

import network
from machine import UART, Pin

import at_modem

_RXBUF = 4096  # UART receive buffer for the modem (PPP frames arrive in bursts)
_PPP_UP_MS = 30000  # network.PPP must report connected within this time
_DIALOGUE_MS = 150000  # whole AT dialogue (registration on a weak signal is slow)
_FAILS_BEFORE_POWER_CYCLE = 2  # failed attempts in a row before the modem is power-cycled


class ModemHW:
    def __init__(self, pins, rxbuf=_RXBUF):
        self.p = pins
        self.uart = UART(pins["uart"], baudrate=pins.get("baud", 115200), tx=pins["tx"], rx=pins["rx"],
                         rxbuf=rxbuf, timeout=0)
        self.pwrkey = Pin(pins["pwrkey"], Pin.OUT, value=0)
        # The power pin goes high at once: on LilyGO T-A7670 V1.x boards
        # GPIO12 also holds the battery supply, and driven low (as it was)
        # the board resets when it runs from its 18650.
        self.power = Pin(pins["power"], Pin.OUT, value=1) if pins.get("power") is not None else None
        # The modem's reset (T-A7670: GPIO5, active high, a strapping pin) is
        # driven inactive at once, and pulsed before PWRKEY in power_on().
        self.reset_active = 1 if pins.get("reset_active", 1) else 0
        self.reset = (Pin(pins["reset"], Pin.OUT, value=1 - self.reset_active)
                      if pins.get("reset") is not None else None)
        self.flight = Pin(pins["flight"], Pin.OUT, value=1) if pins.get("flight") is not None else None
        self.dtr = Pin(pins["dtr"], Pin.OUT, value=0) if pins.get("dtr") is not None else None
        self.ppp = None  # the PPP session while it is up
        self._ppp_obj = None  # one network.PPP for this UART, kept for life
        self.modem = None

    async def power_on(self):
        """Supply on (boards with a power switch), then a PWRKEY pulse. The
        ESP32 pin drives a transistor that pulls the modem's PWRKEY low, so
        the pulse is high on our side (LilyGO schematics)."""
        if self.power is not None:
            self.power.value(1)
            await asyncio.sleep_ms(100)
        if self.reset is not None:  # LilyGO's order: reset inactive, pulse, then PWRKEY
            self.reset.value(self.reset_active)
            await asyncio.sleep_ms(100)
            self.reset.value(1 - self.reset_active)
            await asyncio.sleep_ms(100)
        self.pwrkey.value(0)
        await asyncio.sleep_ms(100)
        self.pwrkey.value(1)
        await asyncio.sleep_ms(self.p.get("pwrkey_ms", 500))
        self.pwrkey.value(0)

    async def power_off(self):
        if self.ppp is not None:
            await self.disconnect()
        self.pwrkey.value(1)
        await asyncio.sleep_ms(3000)  # a long PWRKEY press powers the modem down
        self.pwrkey.value(0)
        if self.power is not None:
            await asyncio.sleep_ms(2000)
            self.power.value(0)

    async def connect(self, cfg, timeouts=None):
        """AT dialogue up to CONNECT, then PPP. Returns the probe dict; its
        "data" is "connect" and self.ppp is up when it worked."""
        stream = at_modem.StreamPair(asyncio.StreamReader(self.uart))
        m = at_modem.Modem(stream, model=cfg.get("model") or self.p.get("model"), pin=cfg.get("pin"),
                           apn=cfg.get("apn"), user=cfg.get("user", ""), password=cfg.get("password", ""),
                           timeouts=timeouts)
        self.modem = m
        m.set_deadline(_DIALOGUE_MS)
        res = await m.probe(dial=True)
        if res["data"] != "connect":
            return res
        return await self.ppp_up(cfg, res)

    async def ppp_up(self, cfg, res):
        """PPP over the UART after CONNECT; fills res["data"]/["error"]."""
        ppp = self.start_ppp(cfg)
        t = 0
        while not ppp.isconnected() and t < _PPP_UP_MS:
            await asyncio.sleep_ms(200)
            t += 200
        if not ppp.isconnected():
            res["data"] = None
            res["error"] = "ppp_timeout"
            try:
                ppp.disconnect()
            except OSError:
                pass
            return res
        self.ppp = ppp
        return res

    def start_ppp(self, cfg):
        """PPP over the UART once the modem answered CONNECT."""
        # One PPP object per UART for the driver's life: a new one per connect
        # left the old one's poll attached (it ate AT replies) and its
        # finaliser later unhooked the new session's UART IRQ.
        if self._ppp_obj is None:
            self._ppp_obj = network.PPP(self.uart)
        ppp = self._ppp_obj
        user = cfg.get("user") or ""
        key = cfg.get("password") or ""
        if user or key:
            # many APNs have a user and an empty password: key must be a
            # string (""); PPP.connect(key=None) raises TypeError
            ppp.connect(security=ppp.SEC_PAP, user=user, key=key)
        else:
            ppp.connect(security=ppp.SEC_NONE)
        return ppp

    async def _ppp_down(self, limit_ms=5000):
        # the next AT dialogue only once PPP has let go of the UART (status 0)
        p = self._ppp_obj
        t = 0
        while p is not None and t < limit_ms:
            try:
                if p.status() == 0:
                    return True
            except (OSError, AttributeError):
                return True
            await asyncio.sleep_ms(100)
            t += 100
        return p is None

    def isconnected(self):
        return self.ppp is not None and self.ppp.isconnected()

    async def disconnect(self):
        """PPP down, then back to command mode: 1 s of silence, "+++", 1 s of
        silence (the escape guard times), ATH."""
        if self.ppp is not None:
            try:
                self.ppp.disconnect()
            except OSError:
                pass
            self.ppp = None
        await self._ppp_down()
        await asyncio.sleep_ms(1100)
        self.uart.write(b"+++")
        await asyncio.sleep_ms(1100)
        self.uart.write(b"ATH\r")


class Cellular:
    """The cellular link for link_manager.Supervisor: up() / down() /
    isconnected(), plus the last probe result for the status topic and the
    antenna `signal` command."""

    def __init__(self, pins, cfg, hw=None):
        self.hw = hw if hw is not None else ModemHW(pins)
        self.cfg = cfg or {}
        self.powered = False
        self.fails = 0
        self.last = None  # the last probe dict (sim, registered, operator, tech, rssi_dbm, ...)
        self.reattach_failures = 0  # APN changes the modem would not re-attach with, all attempts

    async def up(self):
        if self.fails >= _FAILS_BEFORE_POWER_CYCLE and self.powered:
            await self.hw.power_off()
            self.powered = False
            self.fails = 0
        if not self.powered:
            await self.hw.power_on()
            self.powered = True
        res = await self.hw.connect(self.cfg)
        self.last = res
        if self.hw.modem is not None:
            self.reattach_failures += self.hw.modem.reattach_failures
        ok = res.get("data") == "connect" and self.hw.isconnected()
        self.fails = 0 if ok else self.fails + 1
        return ok, res.get("rssi_dbm")

    async def down(self):
        await self.hw.disconnect()

    def isconnected(self):
        return self.hw.isconnected()

    def dns(self):
        """The PPP peer's DNS server while PPP is up (lwIP wrote it into its
        global server 0 when IPCP came up), else None."""
        p = self.hw.ppp
        if p is None:
            return None
        try:
            return p.ifconfig()[3]
        except (OSError, IndexError):
            return None

    def info(self):
        r = self.last or {}
        return {"sim": r.get("sim"), "registered": r.get("registered"), "operator": r.get("operator"),
                "tech": r.get("tech"), "rssi_dbm": r.get("rssi_dbm"), "rsrp": r.get("rsrp"),
                "error": r.get("error"), "attach": r.get("attach"), "reattach_failures": self.reattach_failures}

    async def signal(self, seconds):
        """Antenna commissioning: min/avg/max dBm over `seconds`. Needs the AT
        channel, so not while PPP carries data (a second channel needs CMUX)."""
        if self.hw.isconnected():
            return {"error": "ppp_up"}
        if not self.powered:
            await self.hw.power_on()
            self.powered = True
        stream = at_modem.StreamPair(asyncio.StreamReader(self.hw.uart))
        m = at_modem.Modem(stream, model=self.cfg.get("model") or self.hw.p.get("model"))
        m.set_deadline(int(seconds * 1000) + 30000)
        if not await m.handshake():
            return {"error": m.result["error"] or "no_response"}
        return await m.sample_signal(seconds)
