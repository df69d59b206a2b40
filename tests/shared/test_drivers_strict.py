# The ESP32 drivers themselves (drivers/platform_esp32.py, drivers/modem.py) against
# strict stand-ins of machine.UART / machine.Pin / network.PPP that fail the
# way MicroPython's ESP32 port does (issue 17.3-17.5): a UART without tx
# takes the port's default TX pin, a flash or PSRAM pin raises; PPP.connect
# with key=None raises TypeError.
import sys

FLASH_PINS = (6, 7, 8, 9, 10, 11)  # WROOM: SPI flash
PSRAM_PINS = (16, 17)  # WROVER: PSRAM
_DEFAULT_TX = {1: 10, 2: 17}  # machine_uart.c: UART1 TX 10, UART2 TX 17


class Pin:
    OUT = 1
    IN = 0
    driven = {}

    def __init__(self, n, mode=0, value=None):
        if n in FLASH_PINS:
            raise ValueError("invalid pin")
        self.n = n
        if value is not None:
            Pin.driven[n] = [value]

    def value(self, v=None):
        if v is not None:
            Pin.driven.setdefault(self.n, []).append(v)


class UART:
    made = []

    def __init__(self, uid, baudrate=115200, bits=8, parity=None, stop=1, tx=None, rx=None, rxbuf=256, timeout=0):
        if tx is None:
            tx = _DEFAULT_TX[uid]
        for p in (tx, rx):
            if p in FLASH_PINS or p in PSRAM_PINS:
                raise ValueError("pin %d is used by flash or PSRAM" % p)
        UART.made.append((uid, tx, rx))

    def any(self):
        return 0

    def init(self, **kw):
        pass

    def write(self, data):
        return len(data)


class PPP:
    SEC_NONE = 0
    SEC_PAP = 1
    objects = 0

    def __init__(self, stream):
        PPP.objects += 1
        self.calls = []

    def connect(self, security=0, user=None, key=None):
        if security and (not isinstance(user, str) or not isinstance(key, str)):
            raise TypeError("can't convert NoneType to str")
        self.calls.append((security, user, key))

    def status(self):
        return 0


class RTC:
    set_to = []

    def datetime(self, t=None):
        if t is not None:
            RTC.set_to.append(t)


class WDT:
    """machine.WDT as ports/esp32/machine_wdt.c (v1.27): id 0 only, timeout
    > 0 ms, one task watchdog (a second WDT() reconfigures its timeout), and
    no way to stop it (no deinit)."""

    timeout_ms = None
    feeds = 0
    made = 0

    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError()
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        WDT.timeout_ms = timeout
        WDT.made += 1

    def feed(self):
        WDT.feeds += 1


class _Machine:
    UART = UART
    Pin = Pin
    RTC = RTC
    WDT = WDT


class _Network:
    PPP = PPP


def _with_standins(fn):
    saved = dict((k, sys.modules.get(k)) for k in ("machine", "network"))
    sys.modules["machine"] = _Machine
    sys.modules["network"] = _Network
    try:
        _forget_drivers()
        return fn()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        _forget_drivers()


_DRIVERS = ("drivers.platform_esp32", "drivers.modem", "drivers.wifi")


def _forget_drivers():
    # the next import runs against the stand-ins in place; the package keeps
    # its submodules as attributes too, and `from drivers import x` finds those
    pkg = sys.modules.get("drivers")
    for k in _DRIVERS:
        sys.modules.pop(k, None)
        if pkg is not None and hasattr(pkg, k[8:]):
            delattr(pkg, k[8:])


def test_vedirect_uart_without_tx_gets_the_boards_spare_pin():
    def go():
        from drivers import platform_esp32

        UART.made = []
        board = {"vedirect_tx_spare": 27}
        p = platform_esp32.Platform(board)
        p.open_vedirect({"name": "solar", "uart": 2, "rx": 4})  # no tx: the old code got GPIO17 (PSRAM)
        p.open_shared_uart([{"name": "a", "uart": 1, "rx": 18}, {"name": "b", "uart": 1, "rx": 19}])
        assert UART.made == [(2, 27, 4), (1, 27, 18)]
        p.open_vedirect({"name": "house", "uart": 1, "rx": 13, "tx": 23})
        assert UART.made[-1] == (1, 23, 13)

    _with_standins(go)


def test_ppp_user_without_password_and_one_ppp_object():
    def go():
        from drivers import modem

        hw = modem.ModemHW({"uart": 1, "tx": 26, "rx": 27, "pwrkey": 4, "power": 12, "reset": 5, "reset_active": 1})
        assert Pin.driven[12] == [1]  # battery hold: high at once (T-A7670 V1.x)
        assert Pin.driven[5] == [0]  # modem reset inactive at once
        PPP.objects = 0
        p1 = hw.start_ppp({"apn": "internet", "user": "web", "password": ""})
        assert p1.calls == [(PPP.SEC_PAP, "web", "")]
        p2 = hw.start_ppp({"apn": "internet"})
        assert p2 is p1 and PPP.objects == 1 and p2.calls[-1] == (PPP.SEC_NONE, None, None)

    _with_standins(go)


def test_clock_set_from_the_modems_network_time():
    # issue 17.1: nothing set the clock; every power-on started at 2000
    def go():
        import asyncio
        from drivers import platform_esp32

        class Modem:
            result = {"clock_s": 1764940990}  # 2025-12-05 13:23:10 UTC, from +CCLK

        class Hw:
            modem = Modem()

        class Cell:
            hw = Hw()

        class Link:
            cell = Cell()

        p = platform_esp32.Platform({})
        p._link = Link()
        RTC.set_to = []
        assert asyncio.run(p.sync_clock()) == "modem"
        # RTC.datetime takes (year, month, day, weekday, hours, minutes,
        # seconds, subseconds) from gmtime's (year, month, day, hour, minute,
        # second, weekday, yearday), on the ESP32's 2000 epoch
        import time

        g = time.gmtime(1764940990 - 946684800)
        assert RTC.set_to == [(g[0], g[1], g[2], g[6], g[3], g[4], g[5], 0)]
        assert p.clock_state() in ("modem", "unset")  # the stand-in RTC does not move time.time()

    _with_standins(go)


def _with_lwip(fn):
    # the strict network stand-in that keeps lwIP's route and DNS (issue 17.7),
    # and asyncio.sleep_ms (MicroPython only) as a yield, so the drivers' guard
    # times pass in simulated time
    import asyncio

    import _net_standin

    had = getattr(asyncio, "sleep_ms", None)
    asyncio.sleep_ms = lambda ms: asyncio.sleep(0)
    saved = _Network
    try:
        return _with_standins_net(fn, _net_standin)
    finally:
        if had is None:
            del asyncio.sleep_ms
        else:
            asyncio.sleep_ms = had
        assert saved is _Network


def _with_standins_net(fn, net):
    old = sys.modules.get("network")

    def go():
        sys.modules["network"] = net
        try:
            return fn()
        finally:
            sys.modules["network"] = old if old is not None else _Network

    return _with_standins(go)


def test_route_and_dns_follow_the_active_link():
    # issue 17.7: PPP.connect took lwIP's default route and DNS; a Wi-Fi
    # association while PPP was up took the route back, and PPP freed while it
    # held the route left none. After every switch the route and DNS server
    # must be the active link's.
    def go():
        import asyncio

        import _net_standin as net
        from drivers import modem, platform_esp32

        net.Lwip.reset()
        net._STA[:] = []
        net.AP.update(available=False, lease_dns="192.168.1.1")
        now = [0]
        hold = []

        class Hw(modem.ModemHW):
            async def connect(self, cfg, timeouts=None):
                # the AT dialogue is test_at_modem's; from CONNECT on it is the driver's own code
                while hold:
                    await asyncio.sleep(0)
                return await self.ppp_up(cfg, {"data": "connect", "rssi_dbm": -71})

        pins = {"uart": 1, "tx": 26, "rx": 27, "pwrkey": 4}
        p = platform_esp32.Platform({"modem": pins})
        hw = Hw(pins)
        link = p._make_link({"wifi": [{"ssid": "cabin", "password": "pw"}], "modem": {"apn": "internet"}},
                            cell=modem.Cellular(pins, {"apn": "internet"}, hw=hw))
        now[0] = link.clock()  # the manager's times start at the real ticks
        link.clock = lambda: now[0]
        link.lm.o.update(cell_after_ms=5000, connect_timeout_ms=3000, backoff_base_ms=1000, backoff_max_ms=2000,
                         jitter_pct=0, traffic_timeout_ms=0)
        checked = [0]

        def check():
            act = link.lm.active
            if act is None or (act == "wifi" and not link.cell_idle()):
                return  # no link, or PPP still being taken down
            if link.routes.plan(act, link.cell_idle()) is not None:
                return  # PPP was freed since the last step: the next step puts it right
            assert net.Lwip.route() == {"wifi": "wlan", "cell": "ppp"}[act], (act, net.Lwip.default, net.Lwip.up)
            assert net.Lwip.dns == {"wifi": "192.168.1.1", "cell": "10.64.64.64"}[act], (act, net.Lwip.dns)
            checked[0] += 1

        from clock import ticks_add, ticks_diff

        async def run(until, limit_ms=60000):
            end = ticks_add(now[0], limit_ms)
            while ticks_diff(end, now[0]) > 0:
                link.step(now[0])
                for _ in range(8):
                    await asyncio.sleep(0)
                check()
                if until():
                    return
                now[0] = ticks_add(now[0], 250)
            raise AssertionError("not reached: " + repr(link.info()))

        async def scenario():
            # 1. no Wi-Fi: cellular; PPP holds route and DNS
            await run(lambda: link.lm.active == "cell")
            assert net.Lwip.route() == "ppp" and net.Lwip.dns == "10.64.64.64"
            # server 0 rewritten behind our back: read back and put right;
            # the MQTT resolver asks the peer's server all the same
            net.Lwip.dns = "192.168.1.1"
            p._link = link
            assert p._cell_dns(hw.ppp) == "10.64.64.64" and p.resolver() is not None
            await run(lambda: net.Lwip.dns == "10.64.64.64", 1000)
            assert link.routes.dns_fixes == 1
            # 2. the access point returns: its association took the route, so
            # the traffic goes with it and PPP is hung up (freed: status 0)
            net.AP["available"] = True
            await run(lambda: link.lm.active == "wifi" and link.cell_idle())
            assert hw._ppp_obj.status() == 0 and net.Lwip.route() == "wlan" and net.Lwip.dns == "192.168.1.1"
            # 3. Wi-Fi goes; a dial starts; Wi-Fi returns before PPP.connect,
            # whose route is then freed with it; the lease of the re-join
            # carries no DNS: the keeper sets the one it learnt
            net.AP["available"] = False
            net.WLAN().disconnect()
            hold.append(1)
            await run(lambda: link.lm.cell.state == 1)  # dialling
            net.AP.update(available=True, lease_dns=None)
            await run(lambda: net.Lwip.route() == "wlan")
            hold.pop()
            await run(lambda: link.routes.rejoins == 1 and link.lm.active == "wifi" and link.info()["wifi"]["up"]
                      and link.routes.plan("wifi", link.cell_idle()) is None)
            assert net.Lwip.route() == "wlan" and net.Lwip.dns == "192.168.1.1", (link.info(), link.routes.link_dns)
            assert link.routes.dns_fixes >= 1 and net.PPP.objects == 1

        net.PPP.objects = 0
        asyncio.run(scenario())
        assert checked[0] > 5  # route and DNS were checked in every settled state on the way
        st = link.info()
        assert st["route"] == "wifi" and st["dns"] == "192.168.1.1" and st["route_rejoins"] == 1

    _with_lwip(go)


def test_watchdog_armed_once_and_fed_never_stopped():
    def go():
        from drivers import platform_esp32

        WDT.made = WDT.feeds = 0
        WDT.timeout_ms = None
        p = platform_esp32.Platform({})
        for _ in range(5):
            p.feed_watchdog()
        assert WDT.made == 1 and WDT.feeds == 5 and WDT.timeout_ms == 60000
        assert not hasattr(WDT, "deinit")  # once armed, only a reset stops it
        for bad in ((1, 1000), (0, 0)):
            try:
                WDT(*bad)
                ok = True
            except ValueError:
                ok = False
            assert not ok, bad

    _with_standins(go)
