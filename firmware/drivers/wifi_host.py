# Host twin of drivers/wifi.py: the same methods over scripted networks and a
# clock the test or simulator owns, so link_manager can be exercised with
# links that come and go. Runs on CPython and the MicroPython unix port.
#
#   w = WifiHost(clock, {"cabin": {"rssi": -60, "password": "pw"}}, join_ms=3000)
#   w.set_available("cabin", False)   # the access point goes away
class WifiHost:
    def __init__(self, clock, networks, join_ms=2000):
        self.clock = clock  # callable -> ms
        self.nets = networks  # ssid -> {"rssi", "password", "available" (default True)}
        self.join_ms = join_ms
        self.ssid = None
        self.started = None
        self.state = "down"
        self.joins = 0

    def set_available(self, ssid, available):
        self.nets[ssid]["available"] = available
        if not available and self.ssid == ssid:
            self.state = "failed"

    def start_connect(self, ssid, password=""):
        self.joins += 1
        self.ssid = ssid
        self.started = self.clock()
        net = self.nets.get(ssid)
        if net is None or not net.get("available", True) or net.get("password", "") != (password or ""):
            self.state = "failing"  # reported after join_ms, as a real join times out
        else:
            self.state = "connecting"

    def poll(self):
        if self.state in ("connecting", "failing") and self.clock() - self.started >= self.join_ms:
            self.state = "up" if self.state == "connecting" else "failed"
        if self.state == "failing":
            return "connecting"
        return self.state if self.state != "down" else "failed"

    def isconnected(self):
        return self.state == "up"

    def rssi(self):
        if self.state != "up":
            return None
        return self.nets[self.ssid].get("rssi")

    def ip(self):
        return "192.168.4.2" if self.state == "up" else None

    def disconnect(self):
        self.ssid = None
        self.state = "down"
