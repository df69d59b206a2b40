"""Alert hooks: a webhook (JSON POST) and ntfy-style POST (plain text body,
Title/Priority/Tags headers) on alarm raised/cleared and on a gateway going
offline or coming back.

Rate limits, so a flapping alarm or a broker restart that takes 500
gateways offline cannot flood a phone:
- the same alert (gateway, alarm or availability, raised/cleared/offline/
  online) goes out at most once per `min_gap_s`; repeats inside it (a
  flapping alarm, a gateway bouncing) are held back;
- all hooks together send at most `per_minute` alerts a minute (a token
  bucket of that size); beyond it alerts are held back;
- what was held back is counted and said in one summary alert ("N more held
  back: ...") as soon as the bucket allows, at most once a minute.
Delivery failures are counted and logged with the hook's host only (a
webhook URL often carries a token).
"""
import collections
import json
import sys
import time
import urllib.parse

KINDS = ("alarm_raised", "alarm_cleared", "offline", "online")
_PRIORITY = {"alarm_raised": "high", "offline": "high", "alarm_cleared": "default", "online": "default"}
_TAGS = {"alarm_raised": "warning", "offline": "red_circle", "alarm_cleared": "white_check_mark",
         "online": "green_circle"}


def text_of(a):
    """(title, one line) of a transition."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(a["t"])) if a.get("t") else ""
    gw = a["gateway"]
    if a["kind"] == "alarm_raised":
        title = "%s: %s %s raised" % (gw, a.get("severity", "alarm"), a.get("rule"))
    elif a["kind"] == "alarm_cleared":
        title = "%s: %s cleared" % (gw, a.get("rule"))
    elif a["kind"] == "offline":
        title = "%s is offline" % gw
    else:
        title = "%s is back online" % gw
    return title, "%s at %s" % (title, when) if when else title


def host_of(url):
    return urllib.parse.urlsplit(url).hostname or "?"


class Alerts:
    """offer(transition) from anywhere in the loop's thread; run() delivers.
    post(url, body bytes, headers dict) -> awaitable HTTP status (aiohttp in
    the server; a fake in unit tests)."""

    def __init__(self, webhooks=(), ntfy=(), post=None, per_minute=20, min_gap_s=300, severity="warning",
                 public_url=None, clock=time.monotonic, log=None):
        self.webhooks = list(webhooks)
        self.ntfy = list(ntfy)
        self.post = post
        self.per_minute = max(1, per_minute)
        self.min_gap_s = min_gap_s
        self.min_sev = ("info", "warning", "alarm").index(severity)
        self.public_url = public_url.rstrip("/") if public_url else None
        self.clock = clock
        self.log = log or (lambda line: sys.stderr.write("vegw dashboard: %s\n" % line))
        self.tokens = float(self.per_minute)
        self.refilled = clock()
        self.last = {}  # (gw, rule or None, kind) -> when that alert last went out
        self.held = collections.deque(maxlen=20)  # titles held back since the last summary
        self.held_n = 0
        self.summary_at = None
        self.queue = collections.deque(maxlen=10000)
        self.counters = {"offered": 0, "sent": 0, "held_back": 0, "failed": 0, "summaries": 0}

    @property
    def enabled(self):
        return bool(self.webhooks or self.ntfy)

    def wanted(self, a):
        if a["kind"] in ("alarm_raised", "alarm_cleared"):
            sev = a.get("severity", "alarm")
            sev = ("info", "warning", "alarm").index(sev) if sev in ("info", "warning", "alarm") else 2
            return sev >= self.min_sev
        return a["kind"] in KINDS

    def offer(self, a):
        """Decide now (rate limits) whether `a` goes out; queue it if so."""
        if not self.enabled or not self.wanted(a):
            return False
        self.counters["offered"] += 1
        now = self.clock()
        self._refill(now)
        # the same alert (site, alarm or availability, kind) again inside the gap is a flap: held back
        key = (a["gateway"], a.get("rule"), a["kind"])
        last = self.last.get(key)
        if last is not None and now - last < self.min_gap_s:
            return self._hold(a)
        if self.tokens < 1:
            return self._hold(a)
        self.tokens -= 1
        self.last[key] = now
        if len(self.last) > 100000:  # bounded: forget the oldest half
            for k in list(self.last)[:50000]:
                del self.last[k]
        self.queue.append(self._message(a))
        return True

    def _refill(self, now):
        self.tokens = min(float(self.per_minute), self.tokens + (now - self.refilled) * self.per_minute / 60.0)
        self.refilled = now

    def _hold(self, a):
        self.counters["held_back"] += 1
        self.held_n += 1
        self.held.append(text_of(a)[0])
        return False

    def tick(self):
        """A summary of what was held back, when the bucket allows (call about once a second)."""
        now = self.clock()
        self._refill(now)
        if not self.held_n or self.tokens < 1 or (self.summary_at is not None and now - self.summary_at < 60):
            return
        self.tokens -= 1
        self.summary_at = now
        n, titles = self.held_n, list(self.held)
        self.held_n = 0
        self.held.clear()
        title = "vegw: %d more alert%s held back (rate limit)" % (n, "" if n == 1 else "s")
        body = title + ": " + "; ".join(titles[-5:]) + (" ..." if n > 5 else "")
        self.counters["summaries"] += 1
        self.queue.append({"json": {"kind": "summary", "held_back": n, "latest": titles, "text": body},
                           "title": title, "text": body, "priority": "default", "tags": "hourglass"})

    def _message(self, a):
        title, line = text_of(a)
        js = dict(a)
        js["text"] = line
        js["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a["t"])) if a.get("t") else None
        if self.public_url:
            js["url"] = "%s/site/%s" % (self.public_url, urllib.parse.quote(a["gateway"], safe=""))
        return {"json": js, "title": title, "text": line, "priority": _PRIORITY[a["kind"]], "tags": _TAGS[a["kind"]],
                "click": js.get("url")}

    async def deliver(self):
        """Send everything queued (one call per message and hook)."""
        while self.queue:
            m = self.queue.popleft()
            for url in self.webhooks:
                await self._send(url, json.dumps(m["json"]).encode(), {"Content-Type": "application/json"})
            for url in self.ntfy:
                headers = {"Title": _header(m["title"]), "Priority": m["priority"], "Tags": m["tags"],
                           "Content-Type": "text/plain; charset=utf-8"}
                if m.get("click"):
                    headers["Click"] = m["click"]
                await self._send(url, m["text"].encode("utf-8"), headers)

    async def _send(self, url, body, headers):
        try:
            status = await self.post(url, body, headers)
        except Exception as e:  # noqa: BLE001 - network errors of every kind: counted, one line
            self.counters["failed"] += 1
            self.log("alert to %s failed: %s" % (host_of(url), type(e).__name__))
            return
        if 200 <= status < 300:
            self.counters["sent"] += 1
        else:
            self.counters["failed"] += 1
            self.log("alert to %s failed: HTTP %d" % (host_of(url), status))


def _header(s):
    # HTTP headers are latin-1; gateway ids and rule names are ASCII in practice
    return s.encode("latin-1", "replace").decode("latin-1").replace("\n", " ")[:200]
