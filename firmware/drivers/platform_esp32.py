# ESP32 platform: thin adapters from the app to the board's hardware. No
# decisions here (those are in firmware/lib); each lookup is a few lines.
import asyncio
import json
import time

import machine

_UNIX_2000 = 946684800  # ESP32 time.time() counts from 2000-01-01
_CLOCK_VALID = 1704067200  # 2024-01-01: an RTC before it was never set since power-on
_NTP_HOST = "pool.ntp.org"
_RX_BUF = 2048  # UART rx buffer: ~1 s of VE.Direct at 19200 baud absorbs loop stalls
_GAP_MS = 500


def _seed():
    # the link manager's backoff jitter: different on every board, so a fleet
    # that lost the same router does not retry in step
    try:
        import os

        return int.from_bytes(os.urandom(4), "little") or 1
    except (ImportError, AttributeError, OSError):
        return time.ticks_ms() or 1


class UartPort:
    """One VE.Direct device on a hardware UART (rx only unless HEX is used)."""

    def __init__(self, uart_id, rx, tx):
        # tx always given: machine.UART without tx= takes the port's default
        # pin (UART1: GPIO10, a flash pin on WROOM; UART2: GPIO17, PSRAM on
        # WROVER) and the board crashes at boot. Devices without a TX wire get
        # the board's harmless spare (board.json vedirect_tx_spare).
        self.uart = machine.UART(uart_id, baudrate=19200, bits=8, parity=None, stop=1, rx=rx, tx=tx,
                                 rxbuf=_RX_BUF, timeout=0)
        self.idle_ms = 0

    async def read_into(self, buf):
        n = self.uart.readinto(buf) if self.uart.any() else 0
        if n:
            self.idle_ms = 0
            return n
        await asyncio.sleep_ms(20)
        self.idle_ms += 20
        if self.idle_ms >= _GAP_MS:
            self.idle_ms = 0
            return None
        return 0


class SharedUart:
    """One hardware UART, RX pin switched between devices (lib/uart_share.py).
    init(rx=pin) again, never deinit(); from v1.27 init() discards buffered
    input, so what is buffered is read out first."""

    def __init__(self, uart_id, pins, tx):
        self.pins = pins
        self.port = UartPort(uart_id, pins[0], tx)
        self.uart = self.port.uart

    def select(self, i):
        while self.uart.any():
            self.uart.read()
        self.uart.init(baudrate=19200, bits=8, parity=None, stop=1, rx=self.pins[i], rxbuf=_RX_BUF, timeout=0)
        self.port.idle_ms = 0

    async def read_into(self, buf):
        return await self.port.read_into(buf)


class LwipDns:
    """Sets lwIP's global DNS server 0 (network.ipconfig(dns=...), v1.26+)."""

    def set_dns(self, addr):
        import network

        network.ipconfig(dns=addr)

    def get_dns(self):
        import network

        return network.ipconfig("dns")


class Platform:
    def __init__(self, board):
        self._board = board
        self._wdt = None
        self._clock_src = "rtc"  # what set the clock (an RTC kept over a soft reset counts)
        self._relay = None
        self._link = None
        self._store = None

    def read_config(self):
        with open("config.json") as f:
            return f.read()

    def board(self):
        return self._board

    def now_s(self):
        return time.time() + _UNIX_2000

    def _cell_dns(self, ppp):
        # the peer's server as recorded when PPP came up: lwIP's global
        # server 0 (what ppp.ifconfig() shows) may hold another link's
        routes = getattr(self._link, "routes", None)
        rec = routes.link_dns.get("cell") if routes is not None else None
        return rec or ppp.ifconfig()[3]

    def resolver(self):
        """An async name -> IPv4 lookup that does not block, for the MQTT
        client while the link is PPP (getaddrinfo would block the scheduler
        that feeds PPP its input, issue #18737); None on Wi-Fi."""
        cell = getattr(self._link, "cell", None)
        ppp = getattr(getattr(cell, "hw", None), "ppp", None)
        if ppp is None or not ppp.isconnected():
            return None

        async def lookup(name):
            import socket

            import dns_query

            server = self._cell_dns(ppp)  # the DNS server the PPP peer gave
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                return await dns_query.resolve(s, server, name)
            finally:
                s.close()

        return lookup

    def clock_state(self):
        """"unset" after power-on until a source set the RTC, else the source."""
        return self._clock_src if self.now_s() >= _CLOCK_VALID else "unset"

    async def sync_clock(self):
        """Set the RTC from the link: the network's time the modem read before
        dialling (cellular), else SNTP without blocking (Wi-Fi; over PPP a
        name lookup would block the scheduler, issue #18737). Returns the
        source, or None when no source answered."""
        t = None
        src = None
        cell = getattr(self._link, "cell", None)
        modem = getattr(getattr(cell, "hw", None), "modem", None)
        if modem is not None and modem.result.get("clock_s"):
            t, src = modem.result["clock_s"], "modem"
        elif self.link_info().get("link") == "wifi":
            import socket

            import sntp

            try:
                addr = socket.getaddrinfo(_NTP_HOST, 123)[0][-1]
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    t = await sntp.query(s, addr)
                finally:
                    s.close()
                src = "ntp"
            except OSError:
                t = None
        if t is None:
            return None
        tm = time.gmtime(int(t) - _UNIX_2000)
        machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))
        self._clock_src = src
        return src

    def _tx(self, dev):
        tx = dev.get("tx")
        if tx is None:
            tx = (self._board or {}).get("vedirect_tx_spare")
        if tx is None:
            raise ValueError("device %s has no tx and the board names no vedirect_tx_spare" % dev.get("name"))
        return tx

    def open_vedirect(self, dev):
        return UartPort(dev["uart"], dev["rx"], self._tx(dev))

    def open_shared_uart(self, devs):
        return SharedUart(devs[0]["uart"], [d["rx"] for d in devs], self._tx(devs[0]))

    def ble_scanner(self, cfg, on_advert):
        if not any(d.get("type") == "ble" for d in cfg.get("devices", ())):
            return None
        import bluetooth
        from drivers import ble_scan
        import ble_keys

        ble = bluetooth.BLE()
        ble.active(True)
        w, i = ble_scan.scan_config(cfg)
        macs = [ble_keys.mac_bytes(d["mac"]) for d in cfg["devices"] if d.get("type") == "ble"]
        return ble_scan.Scanner(ble, on_advert, window_ms=w, interval_ms=i, macs=macs)

    def block_device(self):
        try:
            from drivers import flash_esp32
        except ImportError:
            return None
        return flash_esp32.open_default()

    def ota_fs(self):
        import osfs

        return osfs.OsFs()

    def state_store(self):
        if self._store is None:
            from drivers import state_store

            self._store = state_store.FileStore("/state")
        return self._store

    def relay(self):
        pin = (self._board or {}).get("relay")
        if pin is None:
            return None
        try:
            from drivers import relay
        except ImportError:
            return None
        self._relay = relay.Relay(pin)
        return self._relay

    async def network_up(self):
        if self._link is None:
            self._link = self._make_link()
        return await self._link.ensure()

    def _make_link(self, cfg=None, cell=None):
        # Wi-Fi first when configured, cellular (PPP) when Wi-Fi has been down
        # for a while and the board has a modem: lib/link_manager.py decides.
        # (cfg and cell are given by the stand-in tests.)
        from drivers import wifi

        if cfg is None:
            with open("config.json") as f:
                cfg = json.loads(f.read())
        import link_manager

        nets = cfg.get("wifi") or []
        w = wifi.Wifi()
        modem_pins = (self._board or {}).get("modem")
        if not cfg.get("modem") or not modem_pins:
            # Wi-Fi only: the app reports failures, not every success
            return link_manager.Supervisor(nets, wifi=w, seed=_seed(), traffic_timeout_ms=0)
        import route_plan
        from drivers import modem

        # lwIP's default route and DNS server 0 follow the active link
        # (route_plan.py: a Wi-Fi association takes the route, so it takes
        # the traffic at once; only DNS can be set from Python)
        if cell is None:
            cell = modem.Cellular(modem_pins, cfg["modem"])
        return link_manager.Supervisor(nets, wifi=w, cell=cell, seed=_seed(),
                                       routes=route_plan.RouteKeeper(), net=LwipDns(), wifi_takes_route=True)

    def link_failed(self):
        if self._link is not None:
            self._link.link_failed()

    def link_ok(self):
        if self._link is not None:
            self._link.link_ok()

    def link_info(self):
        return self._link.info() if self._link is not None else {"link": None}

    def tls_context(self, m):
        import mqtt_async

        ca = None
        if m.get("ca"):
            with open(m["ca"]) as f:
                ca = f.read()
        return mqtt_async.make_tls_context(ca)

    def feed_watchdog(self):
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=60000)
        self._wdt.feed()

    def reset(self):
        machine.reset()

    def command(self, msg, gw):
        # "signal": antenna commissioning on a modem board (min/avg/max dBm
        # over msg["seconds"], checked by lib/commands.py), answered on
        # .../cmd/reply when done
        cell = getattr(self._link, "cell", None)
        if msg.get("cmd") == "signal" and cell is not None:
            asyncio.create_task(self._signal(cell, msg["seconds"], gw))
            return
        gw.reply({"ok": False, "cmd": msg.get("cmd"), "error": "not available on this board"})

    async def _signal(self, cell, seconds, gw):
        try:
            res = await cell.signal(seconds)
        except Exception as e:  # a modem fault is an answer, not a crash
            res = {"error": repr(e)}
        res["cmd"] = "signal"
        res["ok"] = "error" not in res
        gw.reply(res)
