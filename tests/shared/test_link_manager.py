# Failover logic with a fake clock, on both runtimes.
import link_manager as lm

NETS = [{"ssid": "cabin"}, {"ssid": "barn"}]


def mk(nets=NETS, cell=True, **kw):
    opts = {"cell_after_ms": 60000, "wifi_stable_ms": 10000, "connect_timeout_ms": 5000,
            "traffic_timeout_ms": 30000, "backoff_base_ms": 1000, "backoff_max_ms": 16000, "jitter_pct": 0}
    for k in kw:
        opts[k] = kw[k]
    return lm.LinkManager(nets, cellular=cell, now_ms=0, seed=5, **opts)


def test_wifi_first_in_priority_order():
    m = mk()
    assert m.tick(0) == (lm.WIFI_CONNECT, 0)
    m.wifi_connected(100, rssi=-61)
    assert m.tick(200) is None
    assert m.active == "wifi"
    st = m.status()
    assert st["link"] == "wifi" and st["wifi"]["ssid"] == "cabin" and st["wifi"]["rssi"] == -61
    assert st["wifi"]["reconnects"] == 0


def test_failed_network_backs_off_and_next_is_tried():
    m = mk()
    assert m.tick(0) == (lm.WIFI_CONNECT, 0)
    m.wifi_failed(500)
    assert m.next_attempt_ms(0) == 1500  # base 1000 after the first failure
    assert m.tick(600) == (lm.WIFI_CONNECT, 1)  # cabin waits, barn is free
    m.wifi_failed(900)
    assert m.tick(1000) is None  # both backing off
    assert m.tick(1500) == (lm.WIFI_CONNECT, 0)
    m.wifi_failed(1600)
    assert m.next_attempt_ms(0) == 1600 + 2000  # doubled
    # the cap
    for i in range(10):
        m.net_fail[0] = i + 3
    m.wifi_index = 0
    m.wifi_failed(2000)
    assert m.next_attempt_ms(0) == 2000 + 16000


def test_jitter_is_seeded_and_bounded():
    a = mk(jitter_pct=20)
    b = mk(jitter_pct=20)
    da = [a._delay(3, 1000) for _ in range(20)]
    db = [b._delay(3, 1000) for _ in range(20)]
    assert da == db
    assert min(da) >= 3200 and max(da) <= 4800
    assert len(set(da)) > 5


def test_connect_attempt_without_answer_times_out():
    m = mk()
    assert m.tick(0) == (lm.WIFI_CONNECT, 0)
    assert m.tick(4999) is None
    assert m.tick(5000) == (lm.WIFI_DISCONNECT, None)
    assert m.wifi.failures == 1
    assert m.tick(5001) == (lm.WIFI_CONNECT, 1)


def test_cellular_after_wifi_down_for_set_time_and_back():
    m = mk(backoff_base_ms=100000, backoff_max_ms=100000)
    assert m.tick(0) == (lm.WIFI_CONNECT, 0)
    m.wifi_connected(100)
    m.tick(200)
    m.wifi_failed(1000)  # link lost
    assert m.active is None
    t = 1000
    acts = []
    while t < 61000:
        t += 1000
        a = m.tick(t)
        if a:
            acts.append((t, a))
    # barn tried right away, failed by timeout; cabin backing off 100 s
    assert acts[0][1] == (lm.WIFI_CONNECT, 1)
    assert (61000, (lm.CELL_CONNECT, None)) in acts
    assert not any(a[1][0] == lm.CELL_CONNECT for a in acts if a[0] < 61000)
    m.cell_connected(62000, rssi=-85)
    m.tick(62500)
    assert m.active == "cell" and m.failovers == 1
    m.count("cell", tx=1000, rx=200)
    # Wi-Fi comes back: traffic moves after wifi_stable_ms, then the modem hangs up
    m.wifi_index = 0
    m.wifi.state = 1
    m.wifi_connected(70000, rssi=-70)
    assert m.tick(71000) is None and m.active == "cell"
    assert m.tick(80000) == (lm.CELL_DISCONNECT, None)
    assert m.active == "wifi" and m.failovers == 2
    st = m.status()
    assert st["cell"]["tx"] == 1000 and st["cell"]["rx"] == 200 and st["cell"]["up"] is False
    assert st["wifi"]["reconnects"] == 1


def test_no_wifi_configured_goes_cellular_at_once():
    m = mk(nets=[])
    assert m.tick(0) == (lm.CELL_CONNECT, None)
    m.cell_connected(10)
    m.tick(20)
    assert m.active == "cell" and m.failovers == 0


def test_cell_failure_backs_off():
    m = mk(nets=[], cell_backoff_base_ms=10000)
    assert m.tick(0) == (lm.CELL_CONNECT, None)
    m.cell_failed(1000)
    assert m.tick(5000) is None
    assert m.tick(11000) == (lm.CELL_CONNECT, None)


def test_up_but_no_traffic_counts_as_down():
    m = mk()
    m.tick(0)
    m.wifi_connected(0)
    m.tick(1)
    m.traffic(20000, "wifi", True)
    assert m.tick(49999) is None
    assert m.tick(50000) == (lm.WIFI_DISCONNECT, None)
    assert m.wifi.stalled == 1 and m.active is None
    # the stalled network backs off; the next one is tried
    assert m.tick(50001) == (lm.WIFI_CONNECT, 1)
    # and cellular follows once Wi-Fi has been down for cell_after_ms
    m.wifi_failed(50002)
    t = 50002
    got = None
    while t < 200000 and got is None:
        t += 500
        a = m.tick(t)
        if a and a[0] == lm.CELL_CONNECT:
            got = t
        elif a and a[0] == lm.WIFI_CONNECT:
            m.wifi_failed(t + 1)
    assert got is not None and 110000 <= got <= 111000


def test_wifi_only_never_asks_for_cell():
    m = mk(cell=False)
    t = 0
    for _ in range(400):
        t += 1000
        a = m.tick(t)
        assert a is None or a[0] != lm.CELL_CONNECT
        if a and a[0] == lm.WIFI_CONNECT:
            m.wifi_failed(t + 10)


def test_network_list_is_bounded():
    m = lm.LinkManager([{"ssid": str(i)} for i in range(12)])
    assert len(m.networks) == 8 and m.ignored_networks == 4


def test_status_shape():
    m = mk()
    st = m.status()
    assert st["link"] is None and st["failovers"] == 0
    for k in ("up", "reconnects", "failures", "tx", "rx", "rssi", "stalled"):
        assert k in st["wifi"] and k in st["cell"]


def test_failover_with_simulated_links():
    # link_manager driving the Wi-Fi host twin, and a fake modem, over a fake clock
    from drivers.wifi_host import WifiHost

    now = [0]
    w = WifiHost(lambda: now[0], {"cabin": {"rssi": -58, "password": "pw"}, "barn": {"rssi": -80, "available": False}},
                 join_ms=3000)
    nets = [{"ssid": "cabin", "password": "pw"}, {"ssid": "barn", "password": ""}]
    m = mk(nets=nets, cell_after_ms=60000)
    cell_up = [False]
    log = []

    def step():
        a = m.tick(now[0])
        if a:
            log.append((now[0], a[0]))
            if a[0] == lm.WIFI_CONNECT:
                w.start_connect(nets[a[1]]["ssid"], nets[a[1]]["password"])
            elif a[0] == lm.WIFI_DISCONNECT:
                w.disconnect()
            elif a[0] == lm.CELL_CONNECT:
                cell_up[0] = True
                m.cell_connected(now[0], rssi=-90)
            elif a[0] == lm.CELL_DISCONNECT:
                cell_up[0] = False
        if m.wifi.state == 1:  # connecting: ask the radio
            st = w.poll()
            if st == "up":
                m.wifi_connected(now[0], w.rssi())
            elif st == "failed":
                m.wifi_failed(now[0])
        elif m.wifi.state == 2 and not w.isconnected():
            m.wifi_failed(now[0])
        if m.active:
            m.traffic(now[0], m.active, True)
            m.count(m.active, tx=100, rx=10)

    for _ in range(20):
        step()
        now[0] += 1000
    assert m.active == "wifi" and m.status()["wifi"]["rssi"] == -58
    w.set_available("cabin", False)  # the access point dies
    while now[0] < 200000 and m.active != "cell":
        step()
        now[0] += 1000
    assert m.active == "cell" and cell_up[0]
    assert 75000 <= now[0] <= 85000  # 60 s after the loss (+ the tick that noticed)
    w.set_available("cabin", True)
    t_back = now[0]
    while now[0] < t_back + 400000 and m.active != "wifi":
        step()
        now[0] += 1000
    assert m.active == "wifi" and not cell_up[0]
    st = m.status()
    assert st["failovers"] == 2 and st["wifi"]["reconnects"] >= 1
    assert st["cell"]["tx"] > 0 and st["wifi"]["tx"] > st["cell"]["tx"] // 10


class _FakeWLAN:
    # just enough of network.WLAN for drivers/wifi.py
    instant = False  # join outcome at once: "cabin" works, anything else is not found

    def __init__(self, which):
        self.st = 1000
        self.joined = None

    def active(self, v=None):
        return True

    def connect(self, ssid, pw):
        self.joined = (ssid, pw)
        self.st = 1001
        if self.instant:
            self.st = 1010 if ssid == "cabin" else 201

    def status(self, key=None):
        if key == "rssi":
            return -55
        return self.st

    def isconnected(self):
        return self.st == 1010

    def disconnect(self):
        self.st = 1000

    def ifconfig(self):
        return ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")


class _FakeNetwork:
    STA_IF = 0
    STAT_IDLE = 1000
    STAT_CONNECTING = 1001
    STAT_GOT_IP = 1010
    STAT_WRONG_PASSWORD = 202
    STAT_NO_AP_FOUND = 201
    WLAN = _FakeWLAN

    @staticmethod
    def hostname(name):
        pass


def test_wifi_driver_maps_wlan_status():
    import sys

    saved = sys.modules.get("network")
    sys.modules["network"] = _FakeNetwork
    try:
        from drivers import wifi

        w = wifi.Wifi(hostname="vegw-test")
        w.start_connect("cabin", "pw")
        assert w.wlan.joined == ("cabin", "pw")
        assert w.poll() == "connecting"
        w.wlan.st = 1010
        assert w.poll() == "up" and w.rssi() == -55 and w.ip() == "10.0.0.2"
        w.wlan.st = 202
        assert w.poll() == "failed"
        w.start_connect("barn", "")
        assert w.wlan.joined == ("barn", None)
        # issue 17.9: right after disconnect() + connect() status() reads
        # STAT_IDLE for a moment: not a failure
        w.wlan.st = 1000
        assert w.poll() == "connecting"
        w._since = wifi._ticks() - 5000  # still idle seconds later: the driver gave up
        assert w.poll() == "failed"
        w.disconnect()
        assert w.ssid is None
    finally:
        if saved is None:
            del sys.modules["network"]
        else:
            sys.modules["network"] = saved
        for k in ("drivers.wifi", "wifi"):
            if k in sys.modules:
                del sys.modules[k]


def test_repeated_traffic_failures_count_as_down():
    m = mk(traffic_timeout_ms=0)  # no success reports expected: only failures count
    m.tick(0)
    m.wifi_connected(10)
    m.tick(20)
    assert m.tick(10000000) is None  # no timeout without success reports
    m.traffic(100, "wifi", False)
    m.traffic(200, "wifi", False)
    m.traffic(300, "wifi", True)  # a success in between resets the count
    m.traffic(400, "wifi", False)
    m.traffic(500, "wifi", False)
    assert m.tick(10000001) is None
    m.traffic(600, "wifi", False)
    assert m.tick(10000002) == (lm.WIFI_DISCONNECT, None)
    assert m.wifi.stalled == 1


def test_wifi_driver_ensure_follows_link_manager():
    import asyncio
    import sys

    saved = sys.modules.get("network")
    sys.modules["network"] = _FakeNetwork
    _FakeWLAN.instant = True
    try:
        from drivers import wifi

        # a Wi-Fi-only board: the platform's supervisor over the adapter
        w = wifi.Wifi()
        s = lm.Supervisor([{"ssid": "attic", "password": "x"}, {"ssid": "cabin", "password": "pw"}], wifi=w,
                          traffic_timeout_ms=0, backoff_base_ms=100000)
        assert asyncio.run(s.ensure(5000)) is True
        assert w.wlan.joined == ("cabin", "pw")  # attic was tried first and not found
        info = s.info()
        assert info["link"] == "wifi" and info["ssid"] == "cabin" and info["rssi_dbm"] == -55
        assert info["wifi_failures"] == 1 and info["ip"] == "10.0.0.2"
        for _ in range(3):
            s.link_failed()  # the broker keeps dropping us on this network
        s.step(time_ms())
        assert s.info()["link"] is None and s.info()["wifi_stalled"] == 1 and s.info()["ip"] is None
        assert asyncio.run(lm.Supervisor([], wifi=wifi.Wifi()).ensure(100)) is False
    finally:
        _FakeWLAN.instant = False
        if saved is None:
            del sys.modules["network"]
        else:
            sys.modules["network"] = saved
        for k in ("drivers.wifi", "wifi"):
            if k in sys.modules:
                del sys.modules[k]


def time_ms():
    import time

    try:
        return time.ticks_ms()
    except AttributeError:
        return int(time.monotonic() * 1000)


class _FakeCell:
    def __init__(self):
        self.ok = True
        self.ups = 0
        self.downs = 0
        self.connected = False

    async def up(self):
        self.ups += 1
        self.connected = self.ok
        return self.ok, (-85 if self.ok else None)

    async def down(self):
        self.downs += 1
        self.connected = False

    def isconnected(self):
        return self.connected


def test_supervisor_drives_wifi_twin_and_cell():
    import asyncio
    from drivers.wifi_host import WifiHost

    now = [0]
    clock = lambda: now[0]  # noqa: E731
    w = WifiHost(clock, {"cabin": {"rssi": -60, "password": "pw"}}, join_ms=2000)
    cell = _FakeCell()
    sup = lm.Supervisor([{"ssid": "cabin", "password": "pw"}], wifi=w, cell=cell, clock=clock, seed=3,
                        cell_after_ms=30000, wifi_stable_ms=5000, backoff_base_ms=1000, backoff_max_ms=8000,
                        connect_timeout_ms=5000, traffic_timeout_ms=0)

    async def run_until(cond, limit_ms, step_ms=500):
        end = now[0] + limit_ms
        while now[0] < end:
            sup.step()
            await asyncio.sleep(0)  # let a spawned cellular up/down run
            await asyncio.sleep(0)
            if cond():
                return True
            now[0] += step_ms
        return False

    async def main():
        assert await run_until(lambda: sup.active() == "wifi", 10000)
        info = sup.info()
        assert info["link"] == "wifi" and info["rssi_dbm"] == -60
        sup.count(tx=500, rx=50)
        w.set_available("cabin", False)
        t_loss = now[0]
        assert await run_until(lambda: sup.active() == "cell", 120000)
        assert 30000 <= now[0] - t_loss <= 32000
        assert cell.ups == 1 and sup.info()["rssi_dbm"] == -85
        sup.count(tx=100)
        # broker unreachable over cellular three times: the cell link is dropped
        for _ in range(3):
            sup.link_failed()
        assert await run_until(lambda: cell.downs == 1, 2000)
        assert sup.lm.cell.stalled == 1
        # it comes back after its backoff, then Wi-Fi returns and traffic moves back
        assert await run_until(lambda: sup.active() == "cell", 60000)
        w.set_available("cabin", True)
        assert await run_until(lambda: sup.active() == "wifi", 60000)
        assert await run_until(lambda: cell.downs == 2, 2000)
        st = sup.info()
        assert st["wifi"]["tx"] == 500 and st["cell"]["tx"] == 100 and st["failovers"] >= 2
        assert sup.errors == 0

    asyncio.run(main())


def test_supervisor_cell_failure_backs_off_and_errors_are_counted():
    import asyncio

    now = [0]
    cell = _FakeCell()
    cell.ok = False
    sup = lm.Supervisor([], cell=cell, clock=lambda: now[0], cell_backoff_base_ms=10000, jitter_pct=0)

    async def main():
        for _ in range(60):  # 30 s
            sup.step()
            await asyncio.sleep(0)
            now[0] += 500
        return cell.ups

    ups = asyncio.run(main())
    assert ups == 2  # at 0 s, then after the 10 s backoff; the next after 20 s more
    assert sup.active() is None and sup.info()["link"] is None

    class Broken:
        def start_connect(self, ssid, pw):
            raise OSError(5)

    sup = lm.Supervisor([{"ssid": "x"}], wifi=Broken(), clock=lambda: now[0])
    sup.step()
    assert sup.errors == 1 and sup.lm.wifi.failures == 1
