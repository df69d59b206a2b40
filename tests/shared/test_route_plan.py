# Issue 17.7: the route keeper's decisions, and the link manager's option that
# moves traffic with the route (the drivers against lwIP-like stand-ins are in
# test_drivers_strict.py).
import link_manager as lm
import route_plan as rp

LEASE = "192.168.1.1"
PEER = "10.64.64.64"


def test_ppp_taking_the_route_from_a_working_wifi_is_undone_after_ppp_is_freed():
    k = rp.RouteKeeper()
    k.wifi_associated(LEASE)
    assert k.plan("wifi", True) is None  # route and DNS are Wi-Fi's
    k.ppp_up(PEER)  # a dial raced the join: PPP.connect took route and DNS
    assert k.plan("wifi", False) is None  # PPP first: a re-join now would lose the route again
    k.ppp_freed()
    assert k.route is None and k.dns is None  # netif_remove and cdns
    assert k.plan("wifi", True) == (rp.REJOIN, None)
    k.rejoined()
    k.wifi_associated("0.0.0.0")  # a lease without DNS
    assert k.plan("wifi", True) == (rp.SET_DNS, LEASE)
    k.dns_set(LEASE)
    assert k.plan("wifi", True) is None and k.status()["dns_fixes"] == 1 and k.status()["route_rejoins"] == 1


def test_cell_dns_is_restored_and_wifi_never_records_the_peers_server():
    k = rp.RouteKeeper()
    k.ppp_up(PEER)
    k.wifi_associated(PEER)  # read back while PPP's server was still in place: not Wi-Fi's
    assert k.link_dns["wifi"] is None
    k.route = "cell"
    k.dns = LEASE  # something else wrote server 0
    assert k.plan("cell", False) == (rp.SET_DNS, PEER)
    k.wifi_lost()
    k.ppp_attempt_failed()
    assert k.route is None and k.plan(None, True) is None


def test_enforce_counts_driver_errors_and_carries_on():
    class Net:
        def set_dns(self, addr):
            raise OSError(5)

    class Sup:
        lm = lm.LinkManager([], cellular=True)
        net = Net()

        def cell_idle(self):
            return False

    sup = Sup()
    sup.lm.active = "cell"
    k = rp.RouteKeeper()
    k.ppp_up(PEER)
    k.dns = None
    assert k.enforce(sup, 0) == (rp.SET_DNS, PEER)
    assert k.errors == 1 and k.dns is None


def _manager(**o):
    # cellular up after a failed Wi-Fi join; the next Wi-Fi attempt is due 3 s later
    opts = {"cell_after_ms": 1000, "wifi_stable_ms": 30000, "connect_timeout_ms": 5000, "jitter_pct": 0,
            "traffic_timeout_ms": 0}
    opts.update(o)
    opts["backoff_base_ms"] = opts["cell_after_ms"] + 4000
    m = lm.LinkManager([{"ssid": "cabin"}], cellular=True, **opts)
    m.tick(0)  # Wi-Fi attempt
    m.wifi_failed(0)
    now = opts["cell_after_ms"] + 1000
    assert m.tick(now) == (lm.CELL_CONNECT, None)
    m.cell_connected(now)
    m.tick(now)
    assert m.active == "cell"
    return m, now


def test_wifi_association_takes_the_traffic_when_it_takes_the_route():
    m, now = _manager(wifi_takes_route=True)
    assert m.tick(now + 3000) == (lm.WIFI_CONNECT, 0)  # background Wi-Fi attempt
    m.wifi_connected(now + 4000)
    assert m.active == "wifi" and m.failovers == 2
    assert m.tick(now + 4000) == (lm.CELL_DISCONNECT, None)


def test_wifi_without_internet_after_a_takeover_hands_back_to_cellular_at_once():
    # the takeover is forced by lwIP; an access point that passes nothing
    # must not cost cell_after_ms of outage on top
    for proven in (False, True):
        m, now = _manager(wifi_takes_route=True, cell_after_ms=120000)
        assert m.tick(now + 3000) == (lm.WIFI_CONNECT, 0)
        m.wifi_connected(now + 4000)
        assert m.tick(now + 4000) == (lm.CELL_DISCONNECT, None)
        if proven:
            m.traffic(now + 4500, "wifi", True)
        for _ in range(3):
            m.traffic(now + 5000, "wifi", False)
        assert m.tick(now + 6000) == (lm.WIFI_DISCONNECT, None)
        if proven:  # a Wi-Fi that carried traffic waits cell_after_ms as always
            assert m.tick(now + 6000) is None and m.tick(now + 6000 + 119000) is None
        else:
            assert m.tick(now + 6000) == (lm.CELL_CONNECT, None)


def test_without_the_option_wifi_waits_for_stability():
    m, now = _manager()
    assert m.tick(now + 3000) == (lm.WIFI_CONNECT, 0)
    m.wifi_connected(now + 4000)
    assert m.tick(now + 4000) is None and m.active == "cell"


def test_rejoin_is_not_a_failure_and_does_not_call_cellular():
    m = lm.LinkManager([{"ssid": "cabin"}], cellular=True, cell_after_ms=1000, jitter_pct=0)
    m.tick(0)
    m.wifi_connected(0)
    m.tick(0)
    assert m.active == "wifi"
    m.wifi_rejoin(50000)
    assert m.active is None and m.wifi.failures == 0
    assert m.tick(50500) is None  # not cellular: Wi-Fi is re-associating, not down
    m.wifi_connected(51000)
    m.tick(51000)
    assert m.active == "wifi" and m.wifi.reconnects == 1
