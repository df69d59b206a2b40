# network module for `vegw doctor` tests on the stand-in board: one access
# point described by hw/wifi.json {"ssid", "password", "rssi"}; the board's
# address is the loopback, so a check that opens a socket reaches the host.
import json

STA_IF = 0
STAT_GOT_IP = 1010


_STA = []  # one interface object, as network.WLAN(STA_IF) is on the board


def WLAN(iface):
    if not _STA:
        _STA.append(_Wlan())
    return _STA[0]


class _Wlan:
    def __init__(self):
        with open("hw/wifi.json") as f:
            self.ap = json.load(f)
        self._on = False
        self._up = False
        self._st = 1000

    def active(self, v=None):
        if v is not None:
            self._on = bool(v)
        return self._on

    def connect(self, ssid, password=""):
        if ssid != self.ap["ssid"]:
            self._st = 201
        elif password != self.ap["password"]:
            self._st = 202
        else:
            self._st = STAT_GOT_IP
            self._up = True

    def disconnect(self):
        self._up = False
        self._st = 1000

    def isconnected(self):
        return self._up

    def status(self, what=None):
        if what == "rssi":
            return self.ap["rssi"]
        return self._st

    def config(self, key):
        return self.ap["ssid"] if key == "ssid" else None

    def ifconfig(self):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
