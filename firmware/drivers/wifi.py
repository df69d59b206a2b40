# ESP32 Wi-Fi station adapter for lib/link_manager.py: start a join without
# blocking, poll its outcome, report RSSI. The policy (which network, when,
# backoff) lives in link_manager; this file only talks to network.WLAN.
# Host twin: wifi_host.py (same methods, scripted networks, fake clock).
#
# What lib/link_manager.Supervisor calls (drivers/platform_esp32.py makes
# both): start_connect(ssid, password), poll(), isconnected(), rssi(),
# disconnect(), ip(); the platform reads dns() for route_plan.
import network

from clock import ticks_diff as _tdiff
from clock import ticks_ms as _ticks

# network.WLAN.status() codes (ESP32 port); getattr keeps older firmware working.
_GOT_IP = getattr(network, "STAT_GOT_IP", 1010)
_CONNECTING = getattr(network, "STAT_CONNECTING", 1001)
_IDLE = getattr(network, "STAT_IDLE", 1000)
_IDLE_GRACE_MS = 3000  # STAT_IDLE this soon after connect() is the driver catching up
_FAILED = tuple(
    getattr(network, n)
    for n in ("STAT_WRONG_PASSWORD", "STAT_NO_AP_FOUND", "STAT_CONNECT_FAIL", "STAT_BEACON_TIMEOUT",
              "STAT_ASSOC_FAIL", "STAT_HANDSHAKE_TIMEOUT")
    if hasattr(network, n)
)


class Wifi:
    def __init__(self, hostname=None):
        if hostname:
            try:
                network.hostname(hostname)
            except (AttributeError, ValueError, OSError):
                pass
        self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(True)
        self.ssid = None
        self._since = 0  # ticks of the last connect() (STAT_IDLE grace)

    def start_connect(self, ssid, password=""):
        """Begin joining `ssid`; returns at once. Poll with poll()."""
        try:
            self.wlan.disconnect()
        except OSError:
            pass
        self.ssid = ssid
        self._since = _ticks()
        self.wlan.connect(ssid, password or None)

    def poll(self):
        """"up", "connecting" or "failed" (the caller times out "connecting")."""
        try:
            st = self.wlan.status()
        except OSError:
            return "failed"
        if st == _GOT_IP and self.wlan.isconnected():
            return "up"
        if st in _FAILED:
            return "failed"
        if st == _IDLE and self.ssid is not None and _tdiff(_ticks(), self._since) >= _IDLE_GRACE_MS:
            # the driver gave up and went idle; right after disconnect() +
            # connect() status() reads STAT_IDLE for a moment: not a failure
            return "failed"
        return "connecting"

    def isconnected(self):
        return self.wlan.isconnected()

    def rssi(self):
        try:
            return self.wlan.status("rssi")
        except (OSError, ValueError):
            return None

    def ip(self):
        try:
            return self.wlan.ifconfig()[0]
        except OSError:
            return None

    def dns(self):
        """DNS server 0 as esp_netif reports it for the station; read right
        after the join it is the DHCP lease's (route_plan.py records it)."""
        try:
            return self.wlan.ifconfig()[3]
        except OSError:
            return None

    def disconnect(self):
        self.ssid = None
        try:
            self.wlan.disconnect()
        except OSError:
            pass
