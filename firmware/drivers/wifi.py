# ESP32 Wi-Fi station adapter for lib/link_manager.py: start a join without
# blocking, poll its outcome, report RSSI. The policy (which network, when,
# backoff) lives in link_manager; this file only talks to network.WLAN.
# Host twin: wifi_host.py (same methods, scripted networks, fake clock).
import network

# network.WLAN.status() codes (ESP32 port); getattr keeps older firmware working.
_GOT_IP = getattr(network, "STAT_GOT_IP", 1010)
_CONNECTING = getattr(network, "STAT_CONNECTING", 1001)
_IDLE = getattr(network, "STAT_IDLE", 1000)
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

    def start_connect(self, ssid, password=""):
        """Begin joining `ssid`; returns at once. Poll with poll()."""
        try:
            self.wlan.disconnect()
        except OSError:
            pass
        self.ssid = ssid
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
        if st == _IDLE and self.ssid is not None:
            return "failed"  # the driver gave up and went idle
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

    def disconnect(self):
        self.ssid = None
        try:
            self.wlan.disconnect()
        except OSError:
            pass
