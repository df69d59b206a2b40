# Strict stand-ins for MicroPython v1.27's ESP32 `network` module (WLAN, PPP,
# ipconfig) that keep lwIP's default route and DNS server 0 the way the board
# does (issue 17.7; facts from ports/esp32/network_ppp.c, network_common.c,
# ESP-IDF esp_netif_lwip.c, lwIP netif.c and ppp.c):
# - PPP.connect(): pppapi_set_default -> PPP is the default route at once;
#   IPCP up (here: the first poll through isconnected()/status()) -> the
#   peer's DNS goes into server 0 (usepeerdns).
# - PPP.disconnect(): IPCP down clears server 0 if it still holds the peer's
#   address; the PCB is freed (status() 0) on a later poll, and netif_remove
#   sets the default route to none if PPP held it.
# - WLAN association: esp_netif's default-netif update makes the station the
#   default even while PPP is up (PPP is not an esp_netif); the DHCP lease
#   writes its DNS (if it carries one) into server 0.
# - WLAN disconnect: the station netif goes down, the default stays on it.
# - network.ipconfig(dns=) sets server 0; there is no `prefer` on the ESP32
#   and PPP.ipconfig() sets nothing (TypeError), as in v1.27.
STA_IF = 0
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
_PEER_DNS = "10.64.64.64"
_ANY = "0.0.0.0"


class Lwip:
    default = None  # "wlan", "ppp" or None: lwIP's netif_default
    dns = _ANY  # DNS server 0 (global)
    up = []  # netifs that are up

    @classmethod
    def reset(cls):
        cls.default = None
        cls.dns = _ANY
        cls.up = []

    @classmethod
    def route(cls):
        """Where a packet to the internet goes: the default netif, if up."""
        return cls.default if cls.default in cls.up else None


AP = {"ssid": "cabin", "password": "pw", "available": False, "lease_dns": "192.168.1.1"}


def hostname(name=None):
    return "vegw"


def ipconfig(*args, **kw):
    if kw:
        if args:
            raise TypeError("can't specify pos and kw args")
        for k in kw:
            if k != "dns":
                raise ValueError("unexpected key")  # no 'prefer' on the ESP32 port
            Lwip.dns = kw[k]
        return None
    if len(args) != 1:
        raise TypeError("must query one param")
    if args[0] != "dns":
        raise ValueError("unexpected key")
    return Lwip.dns


_STA = []


def WLAN(iface=STA_IF):
    if not _STA:
        _STA.append(_Wlan())
    return _STA[0]


class _Wlan:
    def __init__(self):
        self._on = False
        self._st = STAT_IDLE
        self.joins = 0

    def active(self, v=None):
        if v is not None:
            self._on = bool(v)
        return self._on

    def connect(self, ssid, key=None):
        if not self._on:
            raise OSError("Wifi Not Started")
        self.joins += 1
        if not AP["available"] or ssid != AP["ssid"] or key != AP["password"]:
            self._st = STAT_NO_AP_FOUND
            return
        if "wlan" not in Lwip.up:
            Lwip.up.append("wlan")
        Lwip.default = "wlan"  # esp_netif: the station is the highest-priority esp_netif up
        if AP["lease_dns"]:
            Lwip.dns = AP["lease_dns"]
        self._st = STAT_GOT_IP

    def disconnect(self):
        if "wlan" in Lwip.up:
            Lwip.up.remove("wlan")
        self._st = STAT_IDLE

    def isconnected(self):
        return self._st == STAT_GOT_IP

    def status(self, what=None):
        if what == "rssi":
            return -60
        return self._st

    def ifconfig(self):
        # esp_netif_get_dns_info: lwIP's global server 0, not the lease's own
        return ("192.168.1.50", "255.255.255.0", "192.168.1.254", Lwip.dns)


class PPP:
    SEC_NONE = 0
    SEC_PAP = 1
    objects = 0
    _INACTIVE, _ACTIVE, _CONNECTING, _CONNECTED = 0, 1, 3, 4

    def __init__(self, stream):
        PPP.objects += 1
        self.calls = []
        self.state = 0
        self._closing = False

    def connect(self, security=0, user=None, key=None):
        if security and (not isinstance(user, str) or not isinstance(key, str)):
            raise TypeError("can't convert NoneType to str")
        if self.state >= 3:
            raise OSError(114)  # EALREADY
        self.calls.append((security, user, key))
        Lwip.default = "ppp"  # pppapi_set_default
        self.state = 3

    def _poll(self):
        if self._closing:  # PPPERR_USER callback: ppp_free -> netif_remove
            self._closing = False
            self.state = 0
            if Lwip.default == "ppp":
                Lwip.default = None
        elif self.state == 3:  # IPCP up
            self.state = 4
            Lwip.up.append("ppp")
            Lwip.dns = _PEER_DNS

    def disconnect(self):
        # pppapi_close: IPCP down now (cdns), the PCB is freed on a later poll
        if self.state >= 3:
            if "ppp" in Lwip.up:
                Lwip.up.remove("ppp")
            if Lwip.dns == _PEER_DNS:
                Lwip.dns = _ANY
            self._closing = True

    def status(self):
        self._poll()
        return self.state

    def isconnected(self):
        self._poll()
        return self.state == 4

    def ifconfig(self):
        if self.state == 0:
            return (None, None, None, None)
        return ("10.1.2.3", "10.64.64.64", "255.255.255.255", Lwip.dns)  # (ip, gw, mask, dns) in v1.27

    def ipconfig(self, *args, **kw):
        if kw:
            raise TypeError("setting properties not supported")
        return None
