# Who holds lwIP's default route and DNS server, and what makes them the
# active link's again (issue 17.7). Pure logic: the Supervisor
# (link_manager.py) reports what the links did and carries out the actions;
# tests drive it with a fake platform that behaves like lwIP.
#
# What MicroPython v1.27 on the ESP32 does (ports/esp32/network_ppp.c,
# network_common.c; ESP-IDF esp_netif_lwip.c; lwIP netif.c, ppp/ipcp.c):
# - PPP.connect() calls pppapi_set_default: PPP is the default route at once.
#   When IPCP comes up, usepeerdns writes the peer's DNS into lwIP's global
#   DNS servers 0 and 1.
# - PPP going down clears those servers if they still hold the peer's
#   addresses; freeing it (status() 0) removes its netif, and lwIP then sets
#   the default route to none when PPP held it.
# - A Wi-Fi association runs esp_netif's default-netif update, which makes the
#   station the default route even while PPP is up: the raw-lwIP PPP netif is
#   not an esp_netif, so its priority is never weighed. The DHCP lease then
#   writes the LAN's DNS into the same global server 0.
# - A Wi-Fi disconnect leaves the default on the station's dead netif.
# - The Python API can set DNS server 0 (network.ipconfig(dns=...)) and read
#   it, but nothing sets the default route: no netif_set_default binding,
#   PPP.ipconfig() sets nothing, and network.ipconfig(prefer=...) is not in
#   the ESP32 port (elsewhere it only picks IPv4 or IPv6 DNS answers).
# So the route can only be moved by the two events that move it: a PPP
# connect (towards PPP) and a Wi-Fi association (towards Wi-Fi). Hence:
# - a Wi-Fi association while on cellular moves the traffic to Wi-Fi at once
#   (LinkManager option wifi_takes_route) and PPP is hung up;
# - when Wi-Fi is the active link but the route is not its own (PPP took it
#   and was freed, or a dial raced a join), PPP is taken fully down first and
#   then Wi-Fi re-associates, which gives the route back;
# - after every switch DNS server 0 is set to the active link's server.

WIFI = "wifi"
CELL = "cell"
REJOIN = "wifi_rejoin"  # re-associate Wi-Fi (the only way to give it the default route back)
SET_DNS = "set_dns"  # arg: address for network.ipconfig(dns=...)


class RouteKeeper:
    def __init__(self):
        self.route = None  # WIFI, CELL or None: the link lwIP's default route points at
        self.dns = None  # what lwIP's DNS server 0 holds, as far as known
        self.link_dns = {WIFI: None, CELL: None}  # each link's own server (lease / PPP peer)
        self.rejoins = 0  # Wi-Fi re-associations made to take the route back
        self.dns_fixes = 0  # times DNS server 0 was set to the active link's
        self.errors = 0  # set_dns / rejoin calls that raised

    # -------------------------------------------------- what the links did
    def wifi_associated(self, dns):
        self.route = WIFI
        if dns and dns != "0.0.0.0" and dns != self.link_dns[CELL]:
            self.link_dns[WIFI] = dns
            self.dns = dns  # the DHCP lease wrote it
        elif self.link_dns[WIFI] is None:
            self.dns = None  # unknown: the lease's server was not readable

    def wifi_lost(self):
        if self.route == WIFI:
            self.route = None  # the default stays on a netif that is down

    def ppp_up(self, dns):
        self.route = CELL
        if dns and dns != "0.0.0.0":
            self.link_dns[CELL] = dns
            self.dns = dns

    def ppp_attempt_failed(self):
        # a dial that reached PPP.connect took the route and then freed it;
        # assuming so costs at most a needless re-association
        if self.route == CELL or self.route == WIFI:
            self.route = None

    def ppp_freed(self):
        if self.route == CELL:
            self.route = None
        if self.dns is not None and self.dns == self.link_dns[CELL]:
            self.dns = None  # lwIP cleared the peer's server
        self.link_dns[CELL] = None

    def event(self, name, adapter=None):
        """One of the methods above by name; with an adapter (wifi/cell
        driver), its dns() is the argument."""
        f = getattr(self, name)
        if adapter is None:
            return f()
        try:
            dns = adapter.dns() if hasattr(adapter, "dns") else None
        except Exception:  # noqa: BLE001
            dns = None
        return f(dns)

    # ------------------------------------------------------------ decisions
    def plan(self, active, cell_down):
        """(action, arg) to carry out now, or None. `active` is where the
        link manager sends traffic; `cell_down` True once PPP is freed."""
        if active == WIFI and self.route != WIFI:
            if not cell_down:
                return None  # PPP first (the manager hangs it up); it could take the route again
            return (REJOIN, None)
        if active is not None and self.route == active:
            want = self.link_dns[active]
            if want and self.dns != want:
                return (SET_DNS, want)
        return None

    def dns_set(self, addr):
        self.dns = addr
        self.dns_fixes += 1

    def rejoined(self):
        self.rejoins += 1

    def status(self):
        return {"route": self.route, "dns": self.dns, "route_rejoins": self.rejoins, "dns_fixes": self.dns_fixes,
                "route_errors": self.errors}

    # ------------------------------------------------- carrying it out
    def enforce(self, sup, now):
        """One action of plan() through the Supervisor's adapters: sup.wifi
        (start_connect) and sup.net (set_dns(addr), and get_dns() when it can
        read server 0 back: a lease renewal may have rewritten it)."""
        get = getattr(sup.net, "get_dns", None)
        if get is not None:
            try:
                cur = get()
                self.dns = None if not cur or cur == "0.0.0.0" else cur
            except Exception:  # noqa: BLE001
                self.errors += 1
        a = self.plan(sup.lm.active, sup.cell_idle())
        if a is None:
            return None
        try:
            if a[0] == REJOIN:
                i = sup.lm.wifi_index
                if i is None:
                    return None
                net = sup.networks[i]
                sup.lm.wifi_rejoin(now)
                self.rejoined()
                sup.wifi.start_connect(net["ssid"], net.get("password", ""))
            else:
                sup.net.set_dns(a[1])
                self.dns_set(a[1])
        except Exception:  # noqa: BLE001 - a driver error must not stop the supervisor
            self.errors += 1
        return a

