"""The dashboard's web side (aiohttp): pages, JSON API, live updates (SSE).

Everything is GET: the dashboard shows the fleet and changes nothing (the
only message it sends to a gateway is the read-only `logs` command, for the
charts; --no-history turns that off too).

Live updates: a pusher task wakes every PUSH_S, builds the site rows of the
gateways that changed (and of all of them every FULL_S, so a site turns
stale on time without a message), keeps each row's JSON, and sends the rows
whose JSON changed to every open event stream, tagged with a sequence
number. A page embeds the rows and the sequence number it was built from,
and its EventSource asks for what changed after it (`?since=`, then the
browser's Last-Event-ID on a reconnect): nothing is missed between the
page and the stream, and a reconnect costs only the rows that changed.
A client that cannot keep up (its queue full) is closed; it reconnects and
catches up the same way.
"""
import asyncio
import base64
import hmac
import html
import json
import os
import pathlib
import time

from aiohttp import web

from .history import SPANS, field_meta

HERE = pathlib.Path(__file__).resolve().parent
PUSH_S = 0.5
FULL_S = 2.0
PING_S = 15.0
CLIENT_QUEUE = 64  # events buffered per stream before the client is dropped (it reconnects)
MAX_CLIENTS = 200
# columns of the fleet table whose decimals come from the field they show
TABLE_FIELDS = {"soc": "SOC", "v": "V", "i": "I", "pv_w": "PPV", "pv_kwh": "H20"}


def rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class Dashboard:
    def __init__(self, fleet, history, alerts, title="vegw fleet", password=None, user="vegw", clock=time.time):
        self.fleet = fleet
        self.history = history
        self.alerts = alerts
        self.title = title
        self.password = password
        self.user = user
        self.clock = clock
        self.row_json = {}  # gw -> its site row as JSON text
        self.row_seq = {}  # gw -> seq of the push that last changed it
        self.seq = 0
        self.clients = set()
        self.failed_auth = {}  # peer -> [count, window start]
        self.counters = {"pushes": 0, "rows_sent": 0, "clients_dropped": 0, "auth_failures": 0}
        self.started = clock()
        self._last_full = 0.0

    # ------------------------------------------------------------ the app
    def app(self):
        app = web.Application(middlewares=[self._security, self._auth])
        app.router.add_get("/", self.page_fleet)
        app.router.add_get("/site/{gw}", self.page_site)
        app.router.add_get("/api/sites", self.api_sites)
        app.router.add_get("/api/site/{gw}", self.api_site)
        app.router.add_get("/api/site/{gw}/history", self.api_history)
        app.router.add_get("/api/stats", self.api_stats)
        app.router.add_get("/events", self.events)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_static("/static/", str(HERE / "static"), append_version=False)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._close_streams)  # before aiohttp waits for open requests
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app):
        self.refresh(full=True)
        self._pusher = asyncio.get_running_loop().create_task(self._push_loop())

    async def _close_streams(self, app):
        for q in list(self.clients):
            q.closed = True
            try:
                q.put_nowait(None)
            except asyncio.QueueFull:
                pass

    async def _stop(self, app):
        self._pusher.cancel()

    @web.middleware
    async def _security(self, request, handler):
        resp = await handler(request)
        h = resp.headers
        # no inline script or style anywhere: the pages' data ride in a JSON block
        h.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                     "base-uri 'none'; form-action 'none'")
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("X-Frame-Options", "DENY")
        return resp

    @web.middleware
    async def _auth(self, request, handler):
        if self.password is None or request.path == "/healthz":
            return await handler(request)
        peer = request.remote or "?"
        now = time.monotonic()
        fails = self.failed_auth.get(peer)
        if fails is not None and now - fails[1] > 60:
            fails = self.failed_auth[peer] = [0, now]
        if fails is not None and fails[0] >= 20:  # guessing: a minute's pause for this peer
            raise web.HTTPTooManyRequests(text="too many failed logins; wait a minute\n")
        got = request.headers.get("Authorization", "")
        ok = False
        if got.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(got[6:], validate=True).decode("utf-8").partition(":")
                ok = hmac.compare_digest(user.encode(), self.user.encode()) & \
                    hmac.compare_digest(pw.encode(), self.password.encode())
            except (ValueError, UnicodeDecodeError):
                ok = False
        if not ok:
            if got:
                self.counters["auth_failures"] += 1
                f = self.failed_auth.setdefault(peer, [0, now])
                f[0] += 1
                if len(self.failed_auth) > 10000:
                    self.failed_auth.clear()
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="vegw dashboard", charset="UTF-8"'},
                                       text="login needed\n")
        return await handler(request)

    # ------------------------------------------------------------ rows and pushes
    def refresh(self, full=False):
        """Rebuild the rows that may have changed; return [(gw, json)] of
        those whose JSON did change (and bump seq when any did)."""
        ids = self.fleet.take_dirty()
        if full:
            ids = self.fleet.site_ids()
        if not ids:
            return []
        changed = []
        for row in self.fleet.sites(ids):
            if row["seen"] is not None:
                row["seen"] = int(row["seen"])
            js = json.dumps(row, separators=(",", ":"))
            gw = row["id"]
            if self.row_json.get(gw) != js:
                self.row_json[gw] = js
                changed.append((gw, js))
        if changed:
            self.seq += 1
            for gw, _ in changed:
                self.row_seq[gw] = self.seq
        return changed

    async def _push_loop(self):
        while True:
            await asyncio.sleep(PUSH_S)
            try:
                self.push_once()
            except Exception as e:  # noqa: BLE001 - the pusher must outlive one bad cycle
                print("vegw dashboard: push failed: %r" % (e,), flush=True)

    def push_once(self):
        now = time.monotonic()
        full = now - self._last_full >= FULL_S
        if full:
            self._last_full = now
        changed = self.refresh(full=full)
        if self.alerts is not None:
            self.alerts.tick()
            if self.alerts.queue:
                asyncio.get_running_loop().create_task(self.alerts.deliver())
        if not changed:
            return
        self.counters["pushes"] += 1
        by_gw = dict(changed)
        for q in list(self.clients):
            if q.site is not None:
                if q.site not in by_gw:
                    continue
                rows = [by_gw[q.site]]
            else:
                rows = [js for _, js in changed]
            self._send(q, self._event("sites", rows))

    def _event(self, name, rows):
        body = '{"now":%.3f,"rows":[%s]}' % (self.clock(), ",".join(rows))
        return "id: %d\nevent: %s\ndata: %s\n\n" % (self.seq, name, body)

    def _send(self, q, text):
        try:
            q.put_nowait(text)
            self.counters["rows_sent"] += text.count('"id":')
        except asyncio.QueueFull:
            self.counters["clients_dropped"] += 1
            self.clients.discard(q)
            q.closed = True

    def rows_since(self, since, site=None):
        ids = [site] if site is not None else list(self.row_json)
        return [self.row_json[g] for g in ids if g in self.row_json and self.row_seq.get(g, 0) > since]

    def snapshot(self):
        return '{"now":%.3f,"seq":%d,"rows":[%s]}' % (self.clock(), self.seq, ",".join(self.row_json.values()))

    # ------------------------------------------------------------ pages
    def _page(self, name, boot):
        text = (HERE / "templates" / name).read_text(encoding="utf-8")
        # JSON in a <script type="application/json">: "<" escaped so nothing in it can close the tag
        text = text.replace("{{TITLE}}", html.escape(self.title)).replace("{{BOOT}}", boot.replace("<", "\\u003c"))
        resp = web.Response(text=text, content_type="text/html", charset="utf-8")
        resp.headers["Cache-Control"] = "no-store"
        resp.enable_compression()
        return resp

    def _decimals(self):
        d = {k: field_meta(f)["decimals"] for k, f in TABLE_FIELDS.items()}
        d.update(load_w=0, rssi=0)  # sums of watts and dBm: whole numbers
        return d

    async def page_fleet(self, request):
        boot = '{"title":%s,"decimals":%s,"snapshot":%s}' % (
            json.dumps(self.title), json.dumps(self._decimals()), self.snapshot())
        return self._page("fleet.html", boot)

    async def page_site(self, request):
        gw = request.match_info["gw"]
        detail = self._detail(gw)
        if detail is None:
            raise web.HTTPNotFound(text="no gateway %r on this broker (yet)\n" % gw)
        boot = json.dumps({"title": self.title, "gw": gw, "seq": self.seq, "now": self.clock(), "detail": detail,
                           "spans": list(SPANS), "decimals": self._decimals()})
        return self._page("site.html", boot)

    def _detail(self, gw):
        d = self.fleet.site_detail(gw)
        if d is None:
            return None
        names = set()
        for dev in d["devices"]:
            names.update(dev["fields"])
        d["fields"] = {f: field_meta(f) for f in sorted(names)}
        return d

    # ------------------------------------------------------------ API
    async def api_sites(self, request):
        resp = web.Response(text=self.snapshot(), content_type="application/json")
        resp.enable_compression()
        return resp

    async def api_site(self, request):
        d = self._detail(request.match_info["gw"])
        if d is None:
            raise web.HTTPNotFound(text="no such gateway\n")
        d["now"] = self.clock()
        return web.json_response(d)

    async def api_history(self, request):
        gw = request.match_info["gw"]
        span = request.query.get("span", "day")
        if span not in SPANS:
            raise web.HTTPBadRequest(text="span must be one of %s\n" % ", ".join(SPANS))
        d = self.fleet.site_detail(gw)
        if d is None:
            raise web.HTTPNotFound(text="no such gateway\n")
        data = await self.history.get(gw, span, ask=d["site"]["avail"] != "offline")
        resp = web.json_response(data)
        resp.enable_compression()
        return resp

    async def api_stats(self, request):
        f = self.fleet
        states = {}
        for js in self.row_json.values():
            s = json.loads(js)["state"]
            states[s] = states.get(s, 0) + 1
        return web.json_response({
            "gateways": len(f.gateways), "devices": len(f.devices), "messages": f.messages, "bad": f.bad,
            "dropped": f.dropped, "states": states, "seq": self.seq, "clients": len(self.clients),
            "rss_bytes": rss_bytes(), "uptime_s": round(self.clock() - self.started, 1), "pid": os.getpid(),
            "push": self.counters, "alerts": self.alerts.counters if self.alerts is not None else None,
            "history": self.history.stats()})

    async def healthz(self, request):
        return web.Response(text="ok\n")

    async def events(self, request):
        site = request.query.get("site")
        try:
            since = int(request.headers.get("Last-Event-ID") or request.query.get("since") or -1)
        except ValueError:
            since = -1
        if len(self.clients) >= MAX_CLIENTS:
            raise web.HTTPServiceUnavailable(text="too many live views open\n")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})  # nginx: pass events on at once
        await resp.prepare(request)
        q = asyncio.Queue(CLIENT_QUEUE)
        q.site = site
        q.closed = False
        self.clients.add(q)
        try:
            await resp.write(("retry: 2000\n" + self._event("sites", self.rows_since(since, site))).encode())
            while not q.closed:
                try:
                    text = await asyncio.wait_for(q.get(), PING_S)
                except asyncio.TimeoutError:
                    text = "event: ping\ndata: {\"now\":%.3f}\n\n" % self.clock()
                if text is None:
                    break
                await resp.write(text.encode())
        except ConnectionResetError:
            pass
        finally:
            self.clients.discard(q)
        return resp
