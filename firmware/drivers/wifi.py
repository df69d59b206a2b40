# ESP32 Wi-Fi station adapter for lib/link_manager.py: start a join without
# blocking, poll its outcome, report RSSI. The policy (which network, when,
# backoff) lives in link_manager; this file only talks to network.WLAN.
# Host twin: wifi_host.py (same methods, scripted networks, fake clock).
#
# What the app platform (drivers/platform_esp32.py) calls:
#   w = Wifi(cfg["wifi"])          # networks in priority order
#   await w.ensure()  -> bool      # join / keep joined, following link_manager
#   w.link_failed()                # the broker session broke (3 in a row: drop this network)
#   w.link_ok()                    # the broker answered (resets that count)
#   w.info()  -> dict              # for the status topic
import time

import network

import link_manager

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


def _seed():
    # Different on every board, so a fleet that lost the same router does not
    # retry in step.
    try:
        import os

        return int.from_bytes(os.urandom(4), "little") or 1
    except (ImportError, AttributeError, OSError):
        return _ticks() or 1


class Wifi:
    def __init__(self, networks=None, hostname=None, **opts):
        self.networks = [n for n in (networks or []) if isinstance(n, dict) and n.get("ssid")]
        if "traffic_timeout_ms" not in opts:
            opts["traffic_timeout_ms"] = 0  # the app reports failures, not every success
        self.sup = link_manager.Supervisor(self.networks, wifi=self, clock=_ticks, seed=_seed(), **opts)
        self.lm = self.sup.lm
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

    # ------------------------------------------------ link_manager supervision
    def step(self, now=None):
        return self.sup.step(now)

    async def ensure(self, max_wait_ms=30000):
        """True once Wi-Fi is up (at once if it is), False after max_wait_ms."""
        if not self.networks:
            return False
        return await self.sup.ensure(max_wait_ms)

    def link_failed(self):
        self.sup.link_failed()

    def link_ok(self):
        self.sup.link_ok()

    def info(self):
        st = self.lm.status()
        w = st["wifi"]
        return {"link": "wifi" if w["up"] else None, "rssi_dbm": w["rssi"], "ssid": w.get("ssid"),
                "ip": self.ip() if w["up"] else None, "wifi_reconnects": w["reconnects"],
                "wifi_failures": w["failures"], "wifi_stalled": w["stalled"]}
