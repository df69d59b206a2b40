# The ESP32 drivers themselves (drivers/esp32.py, drivers/modem.py) against
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


class _Machine:
    UART = UART
    Pin = Pin
    RTC = RTC


class _Network:
    PPP = PPP


def _with_standins(fn):
    saved = dict((k, sys.modules.get(k)) for k in ("machine", "network"))
    sys.modules["machine"] = _Machine
    sys.modules["network"] = _Network
    try:
        for k in ("drivers.esp32", "drivers.modem"):
            sys.modules.pop(k, None)
        return fn()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        for k in ("drivers.esp32", "drivers.modem"):
            sys.modules.pop(k, None)


def test_vedirect_uart_without_tx_gets_the_boards_spare_pin():
    def go():
        from drivers import esp32

        UART.made = []
        board = {"vedirect_tx_spare": 27}
        p = esp32.Platform(board)
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
        from drivers import esp32

        class Modem:
            result = {"clock_s": 1764940990}  # 2025-12-05 13:23:10 UTC, from +CCLK

        class Hw:
            modem = Modem()

        class Cell:
            hw = Hw()

        class Link:
            cell = Cell()

        p = esp32.Platform({})
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
