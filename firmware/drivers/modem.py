# Cellular modem hardware: power it up with PWRKEY, open its UART with a big
# receive buffer, run the shared AT dialogue (lib/at_modem.py) up to CONNECT,
# then hand the same UART to network.PPP (MicroPython v1.27 or later: PPP
# takes a UART from v1.26, and v1.27 fixed crashes on disconnect). While PPP
# is up it is the default route, so the MQTT socket code serves both links.
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
        self.power = Pin(pins["power"], Pin.OUT, value=0) if pins.get("power") is not None else None
        self.flight = Pin(pins["flight"], Pin.OUT, value=1) if pins.get("flight") is not None else None
        self.dtr = Pin(pins["dtr"], Pin.OUT, value=0) if pins.get("dtr") is not None else None
        self.ppp = None
        self.modem = None

    async def power_on(self):
        """Supply on (boards with a power switch), then a PWRKEY pulse. The
        ESP32 pin drives a transistor that pulls the modem's PWRKEY low, so
        the pulse is high on our side (LilyGO schematics)."""
        if self.power is not None:
            self.power.value(1)
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
        ppp = network.PPP(self.uart)
        user = cfg.get("user") or None
        key = cfg.get("password") or None
        sec = ppp.SEC_PAP if (user or key) else ppp.SEC_NONE
        ppp.connect(security=sec, user=user, key=key)
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
        ok = res.get("data") == "connect" and self.hw.isconnected()
        self.fails = 0 if ok else self.fails + 1
        return ok, res.get("rssi_dbm")

    async def down(self):
        await self.hw.disconnect()

    def isconnected(self):
        return self.hw.isconnected()

    def info(self):
        r = self.last or {}
        return {"sim": r.get("sim"), "registered": r.get("registered"), "operator": r.get("operator"),
                "tech": r.get("tech"), "rssi_dbm": r.get("rssi_dbm"), "rsrp": r.get("rsrp"),
                "error": r.get("error")}

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
