# Wi-Fi / cellular failover as pure logic: no radio, no sockets, no clock of
# its own. The app reports what happened (a Wi-Fi join succeeded, PPP came up,
# the broker answered or did not) with the current ticks_ms, calls
# `tick(now_ms)` about once a second and carries out the action it returns.
# Tests drive the same object with a fake clock.
#
# Policy
# - Wi-Fi first when networks are configured, in the order given. Each
#   network has its own exponential backoff (base * 2^failures, capped) with
#   seeded jitter, so a dead first network does not starve a working second.
# - A link that is up but passes no traffic counts as down: either no
#   traffic(ok=True) for traffic_timeout_ms, or _MAX_BAD traffic(ok=False)
#   in a row (broker unreachable, pings unanswered). A Wi-Fi network in that
#   state is dropped and tried again later like a failed join.
# - Cellular comes up when Wi-Fi has been down for `cell_after_ms` (or at once
#   if no Wi-Fi is configured). Wi-Fi is retried in the background meanwhile;
#   when it has been up with traffic for `wifi_stable_ms`, traffic moves back
#   and the modem is hung up (data costs money).
# - Per link: reconnect count, bytes in/out, RSSI; `status()` is the dict the
#   status topic publishes.
#
# Length: one state machine (Wi-Fi / cellular failover): its states share the
# same timers and counters, and a split would pass them back and forth.
try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_MAX_NETWORKS = const(8)  # Wi-Fi networks kept from config; the rest are ignored and counted
_MAX_BAD = const(3)  # consecutive traffic failures (traffic(ok=False)) that make an up link "down"

WIFI_CONNECT = "wifi_connect"  # arg: index into networks
WIFI_DISCONNECT = "wifi_disconnect"
CELL_CONNECT = "cell_connect"
CELL_DISCONNECT = "cell_disconnect"

_DOWN = const(0)
_CONNECTING = const(1)
_UP = const(2)

DEFAULTS = {
    "cell_after_ms": 120000,  # Wi-Fi down this long -> bring up cellular
    "wifi_stable_ms": 30000,  # Wi-Fi up with traffic this long -> move back from cellular
    "connect_timeout_ms": 20000,  # a Wi-Fi join without a result counts as failed
    "cell_connect_timeout_ms": 240000,  # modem power-up + registration + dial + PPP
    "traffic_timeout_ms": 90000,  # up but no successful traffic this long -> down (0: only count failures)
    "backoff_base_ms": 2000,
    "backoff_max_ms": 300000,
    "jitter_pct": 20,  # +-20 % on every backoff delay
    "cell_backoff_base_ms": 10000,
    # True on the ESP32: a Wi-Fi association takes lwIP's default route even
    # while PPP is up, so traffic moves to Wi-Fi at once (route_plan.py)
    "wifi_takes_route": False,
}


from clock import ticks_add, ticks_ms as _ticks_ms
from clock import ticks_diff as _after  # wrap-safe a - b, on every runtime
from rng import Rng  # noqa: F401 - link_manager.Rng for its users


class LinkStats:
    def __init__(self, name):
        self.name = name
        self.state = _DOWN
        self.since = None  # ticks of the last state change
        self.connects = 0  # successful connects
        self.reconnects = 0  # successful connects after the first
        self.failures = 0  # failed attempts, all time
        self.tx = 0
        self.rx = 0
        self.rssi = None
        self.last_ok = None  # ticks of the last successful traffic
        self.stalled = 0  # times dropped for passing no traffic
        self.bad = 0  # consecutive traffic failures since the last success

    def up(self, now_ms):
        """A connect succeeded; False if the link was already up."""
        if self.state == _UP:
            return False
        self.state = _UP
        self.since = now_ms
        self.connects += 1
        if self.connects > 1:
            self.reconnects += 1
        self.last_ok = now_ms  # give the new link a full traffic_timeout to prove itself
        self.bad = 0
        return True

    def down(self, now_ms):
        """A connect failed or an up link dropped."""
        self.state = _DOWN
        self.since = now_ms
        self.failures += 1

    def as_dict(self):
        return {"up": self.state == _UP, "reconnects": self.reconnects, "failures": self.failures,
                "tx": self.tx, "rx": self.rx, "rssi": self.rssi, "stalled": self.stalled}


class LinkManager:
    def __init__(self, networks, cellular=False, now_ms=0, seed=1, **opts):
        o = dict(DEFAULTS)
        for k in opts:
            if k not in o:
                raise ValueError("unknown option " + k)  # a programming error, not outside input
            o[k] = opts[k]
        self.o = o
        nets = list(networks or ())
        self.ignored_networks = len(nets) - _MAX_NETWORKS if len(nets) > _MAX_NETWORKS else 0
        self.networks = nets[:_MAX_NETWORKS]
        n = len(self.networks)
        self.net_fail = [0] * n  # consecutive failures per network
        self.net_next = [now_ms] * n  # earliest next attempt per network
        self.cellular = bool(cellular)
        self.rng = Rng(seed)
        self.wifi = LinkStats("wifi")
        self.cell = LinkStats("cell")
        self.wifi_index = None  # network being joined or joined
        self.wifi_down_since = now_ms
        self.wifi_good_since = None
        self.unproven_takeover = False  # Wi-Fi took the traffic from cellular and has passed none yet
        self.cell_fail = 0
        self.cell_next = now_ms
        self.active = None  # "wifi", "cell" or None: where traffic goes
        self.failovers = 0
        self.last_action = None

    # ------------------------------------------------------------ backoff
    def _delay(self, fails, base):
        d = base
        i = 1
        while i < fails and d < self.o["backoff_max_ms"]:
            d *= 2
            i += 1
        if d > self.o["backoff_max_ms"]:
            d = self.o["backoff_max_ms"]
        j = self.o["jitter_pct"]
        if j:
            r = self.rng.next() % 2001 - 1000  # -1000..1000
            d += d * j * r // 100000
        return d

    # ------------------------------------------------------------- events
    def wifi_connected(self, now_ms, rssi=None):
        w = self.wifi
        if not w.up(now_ms):
            return
        w.rssi = rssi
        self.wifi_good_since = now_ms
        if self.wifi_index is not None:
            self.net_fail[self.wifi_index] = 0
        if self.o["wifi_takes_route"] and self.active == "cell":
            self.active = "wifi"  # the route went with the association; the modem hangs up next tick
            self.failovers += 1
            self.unproven_takeover = True

    def wifi_rejoin(self, now_ms):
        """Re-associate the joined network (route_plan: the only way to give
        Wi-Fi the default route back); not a failure, and no reason for cellular."""
        self.wifi.state = _CONNECTING
        self.wifi.since = now_ms
        self.wifi_down_since = now_ms
        if self.active == "wifi":
            self.active = None  # no traffic until it is associated again

    def wifi_failed(self, now_ms):
        """A join attempt failed, or an up link dropped."""
        w = self.wifi
        was_up = w.state == _UP
        w.down(now_ms)
        self.wifi_good_since = None
        i = self.wifi_index
        if i is not None:
            self.net_fail[i] += 1
            self.net_next[i] = ticks_add(now_ms, self._delay(self.net_fail[i], self.o["backoff_base_ms"]))
        self.wifi_index = None
        if was_up or self.active == "wifi":
            self.wifi_down_since = now_ms
            if self.unproven_takeover:
                # it took over from a working modem and never carried traffic
                # (an access point without internet): cellular again at once
                self.wifi_down_since = ticks_add(now_ms, -self.o["cell_after_ms"])
            if self.active == "wifi":
                self.active = None
        self.unproven_takeover = False

    def wifi_rssi(self, rssi):
        self.wifi.rssi = rssi

    def cell_connected(self, now_ms, rssi=None):
        c = self.cell
        if not c.up(now_ms):
            return
        if rssi is not None:
            c.rssi = rssi
        self.cell_fail = 0

    def cell_failed(self, now_ms):
        self.cell.down(now_ms)
        self.cell_fail += 1
        self.cell_next = ticks_add(now_ms, self._delay(self.cell_fail, self.o["cell_backoff_base_ms"]))
        if self.active == "cell":
            self.active = None

    def cell_rssi(self, rssi):
        self.cell.rssi = rssi

    def traffic(self, now_ms, link, ok):
        """The app's verdict on a link: ok=True when the broker answered
        (CONNACK, PINGRESP, PUBACK), False when it could not be reached."""
        s = self.wifi if link == "wifi" else self.cell
        if s.state != _UP:
            return
        if ok:
            s.last_ok = now_ms
            s.bad = 0
            if s is self.wifi:
                self.unproven_takeover = False
        else:
            s.bad += 1

    def count(self, link, tx=0, rx=0):
        s = self.wifi if link == "wifi" else self.cell
        s.tx += tx
        s.rx += rx

    # ---------------------------------------------------------- decisions
    def _stalled(self, s, now_ms):
        if s.state != _UP:
            return False
        if s.bad >= _MAX_BAD:
            return True
        t = self.o["traffic_timeout_ms"]
        return t > 0 and s.last_ok is not None and _after(now_ms, s.last_ok) >= t

    def tick(self, now_ms):
        """Returns None or (action, arg); at most one action per call."""
        a = self._decide(now_ms)
        self.last_action = a
        return a

    def _decide(self, now_ms):
        w, c, o = self.wifi, self.cell, self.o
        # 1. attempts that never reported back
        if w.state == _CONNECTING and _after(now_ms, w.since) >= o["connect_timeout_ms"]:
            self.wifi_failed(now_ms)
            return (WIFI_DISCONNECT, None)
        if c.state == _CONNECTING and _after(now_ms, c.since) >= o["cell_connect_timeout_ms"]:
            self.cell_failed(now_ms)
            return (CELL_DISCONNECT, None)
        # 2. links that are up but pass nothing
        if self._stalled(w, now_ms):
            w.stalled += 1
            self.wifi_failed(now_ms)
            return (WIFI_DISCONNECT, None)
        if self._stalled(c, now_ms):
            c.stalled += 1
            self.cell_failed(now_ms)
            return (CELL_DISCONNECT, None)
        # 3. Wi-Fi health and where traffic goes
        wifi_ok = w.state == _UP
        if wifi_ok:
            if self.wifi_good_since is None:
                self.wifi_good_since = now_ms
            if self.active != "wifi":
                if self.active is None or _after(now_ms, self.wifi_good_since) >= o["wifi_stable_ms"]:
                    if self.active == "cell":
                        self.failovers += 1
                    self.active = "wifi"
            if c.state != _DOWN and self.active == "wifi":
                c.state = _DOWN
                c.since = now_ms
                return (CELL_DISCONNECT, None)
        elif self.active == "wifi":
            self.active = None
        if c.state == _UP and self.active is None:
            self.active = "cell"
            if self.networks:
                self.failovers += 1
        # 4. start a Wi-Fi attempt
        if w.state == _DOWN and self.networks:
            i = self._next_network(now_ms)
            if i is not None:
                self.wifi_index = i
                w.state = _CONNECTING
                w.since = now_ms
                return (WIFI_CONNECT, i)
        # 5. cellular when Wi-Fi has been down long enough (or is not configured)
        if self.cellular and c.state == _DOWN and not wifi_ok:
            down_for = _after(now_ms, self.wifi_down_since)
            if (not self.networks or down_for >= o["cell_after_ms"]) and _after(now_ms, self.cell_next) >= 0:
                c.state = _CONNECTING
                c.since = now_ms
                return (CELL_CONNECT, None)
        return None

    def _next_network(self, now_ms):
        for i in range(len(self.networks)):
            if _after(now_ms, self.net_next[i]) >= 0:
                return i
        return None

    def next_attempt_ms(self, index):
        return self.net_next[index]

    # ------------------------------------------------------------- status
    def status(self):
        """For the status topic: active link, per-link counters, failovers."""
        d = {"link": self.active, "failovers": self.failovers, "wifi": self.wifi.as_dict(),
             "cell": self.cell.as_dict()}
        if self.wifi_index is not None and self.wifi.state == _UP:
            net = self.networks[self.wifi_index]
            d["wifi"]["ssid"] = net.get("ssid") if isinstance(net, dict) else net
        return d


class Supervisor:
    """Runs a LinkManager against real (or host twin) links. Duck-typed:

      wifi: start_connect(ssid, password), poll() -> "up"|"connecting"|"failed",
            isconnected(), rssi(), disconnect()          (drivers/wifi.py, wifi_host.py)
      cell: async up() -> (ok, rssi_dbm), async down(), isconnected()
                                                          (drivers/modem.py Cellular)

    The app calls `await ensure()` before opening the broker connection,
    `link_ok()` / `link_failed()` with the broker's verdict, `count()` with
    bytes sent/received, and publishes `info()` in the status topic."""

    def __init__(self, networks, wifi=None, cell=None, clock=None, seed=1, routes=None, net=None, **opts):
        self.networks = [n for n in (networks or []) if isinstance(n, dict) and n.get("ssid")]
        if wifi is None:
            self.networks = []
        self.wifi = wifi
        self.cell = cell
        self.clock = clock or _ticks_ms
        self.lm = LinkManager(self.networks, cellular=cell is not None, now_ms=self.clock(), seed=seed, **opts)
        self.cell_busy = False  # a cellular up/down is in progress (it takes seconds)
        self.errors = 0  # exceptions from a link adapter, counted, never raised
        self.routes = routes  # route_plan.RouteKeeper: default route and DNS follow the active link
        self.net = net  # set_dns(addr) for the RouteKeeper

    def step(self, now=None):
        """One round: carry out the manager's action, report what the links did."""
        if now is None:
            now = self.clock()
        lm = self.lm
        a = lm.tick(now)
        if a is not None:
            act = a[0]
            try:
                if act == WIFI_CONNECT:
                    net = self.networks[a[1]]
                    self.wifi.start_connect(net["ssid"], net.get("password", ""))
                elif act == WIFI_DISCONNECT:
                    self.wifi.disconnect()
                    self._route("wifi_lost")
                elif act == CELL_CONNECT:
                    self.cell_busy = True
                    _spawn(self._cell_up())
                elif act == CELL_DISCONNECT:
                    self.cell_busy = True
                    _spawn(self._cell_down())
            except Exception:  # noqa: BLE001 - a driver error must not stop the supervisor
                self.errors += 1
                if act == WIFI_CONNECT:
                    lm.wifi_failed(now)
        w = lm.wifi
        if self.wifi is not None:
            try:
                if w.state == _CONNECTING:
                    st = self.wifi.poll()
                    if st == "up":
                        lm.wifi_connected(now, self.wifi.rssi())
                        self._route("wifi_associated", self.wifi)
                    elif st == "failed":
                        lm.wifi_failed(now)
                elif w.state == _UP:
                    if self.wifi.isconnected():
                        lm.wifi_rssi(self.wifi.rssi())
                    else:
                        lm.wifi_failed(now)
                        self._route("wifi_lost")
            except Exception:  # noqa: BLE001
                self.errors += 1
        if self.cell is not None and lm.cell.state == _UP and not self.cell_busy:
            try:
                if not self.cell.isconnected():
                    lm.cell_failed(now)
                    self._route("ppp_freed")
            except Exception:  # noqa: BLE001
                self.errors += 1
        if self.routes is not None:
            self.routes.enforce(self, now)
        return a

    def _route(self, event, adapter=None):
        if self.routes is not None:
            self.routes.event(event, adapter)

    def cell_idle(self):
        """True when no PPP session exists or is being made or torn down."""
        return self.cell is None or (not self.cell_busy and self.lm.cell.state == _DOWN)

    async def _cell_up(self):
        try:
            ok, rssi = await self.cell.up()
        except Exception:  # noqa: BLE001
            self.errors += 1
            ok, rssi = False, None
        self.cell_busy = False
        now = self.clock()
        if ok:
            self._route("ppp_up", self.cell)
        else:
            self._route("ppp_attempt_failed")
        if self.lm.cell.state != _CONNECTING:
            # Wi-Fi came back meanwhile and the manager gave up on cellular
            if ok:
                self.cell_busy = True
                await self._cell_down()
            return
        if ok:
            self.lm.cell_connected(now, rssi)
        else:
            self.lm.cell_failed(now)

    async def _cell_down(self):
        try:
            await self.cell.down()
        except Exception:  # noqa: BLE001
            self.errors += 1
        self._route("ppp_freed")
        self.cell_busy = False

    def active(self):
        return self.lm.active

    async def ensure(self, max_wait_ms=30000, poll_ms=250):
        """True as soon as a link carries traffic, False after max_wait_ms."""
        t0 = self.clock()
        while True:
            now = self.clock()
            self.step(now)
            if self.lm.active is not None:
                return True
            if _after(now, t0) >= max_wait_ms:
                return False
            await _asyncio().sleep(poll_ms / 1000)

    def link_ok(self):
        if self.lm.active:
            self.lm.traffic(self.clock(), self.lm.active, True)

    def link_failed(self):
        if self.lm.active:
            self.lm.traffic(self.clock(), self.lm.active, False)

    def count(self, tx=0, rx=0):
        if self.lm.active:
            self.lm.count(self.lm.active, tx, rx)

    def info(self):
        """Status-topic fields: the active link and its RSSI, plus per-link
        counters (a Wi-Fi-only gateway: flat, its network and address)."""
        st = self.lm.status()
        act = st["link"]
        if self.cell is None:
            w = st["wifi"]
            out = {"link": "wifi" if w["up"] else None, "rssi_dbm": w["rssi"], "ssid": w.get("ssid"),
                   "ip": self.wifi.ip() if w["up"] and self.wifi is not None else None,
                   "wifi_reconnects": w["reconnects"], "wifi_failures": w["failures"], "wifi_stalled": w["stalled"]}
        else:
            out = {"link": act, "rssi_dbm": st[act]["rssi"] if act else None, "failovers": st["failovers"],
                   "wifi": st["wifi"], "cell": st["cell"]}
        if self.errors:
            out["link_errors"] = self.errors
        if self.routes is not None:
            out.update(self.routes.status())
        return out


def _asyncio():
    import asyncio

    return asyncio


def _spawn(coro):
    return _asyncio().create_task(coro)
