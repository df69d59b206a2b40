# The gateway's MQTT session, the uplink task: connect with backoff; while
# connected, the live outbox first (states, status, command replies), then
# HA discovery in paced bursts, then the flash-log replay (log_replay.py);
# the replies of OTA and config push, whose reboot waits for the broker's
# PUBACK; one log export at a time. Messages in are routed to the app.
#
# No hardware and no platform here: the app (app.py) gives it the client and
# `host`, which answers (tests/shared/test_uplink.py runs a fake of both, on
# both runtimes):
#   host.beat(name)          the watchdog's liveness mark
#   host.now()               seconds (the gateway's clock)
#   await host.link_ready()  True when the network is up and TLS can check
#                            the broker's dates; else it waited a little
#   await host.connected()   the broker answered: clock, status, discovery
#   host.link_lost()         the session ended on its own
#   await host.tick()        once per round while connected (clock retry)
#   host.ota(suffix, bytes)  a message on <base>ota/<suffix>
#   host.command(bytes)      a message on <base>cmd
#   host.planned_reset(why)  coroutine: the clean stop, then the reset
import asyncio
import gc
import json

from clock import ticks_add, ticks_diff, ticks_ms

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_BACKOFF_MAX_S = const(60)
_LIVE_PER_ROUND = const(8)  # outbox messages per round before the rest get a turn
_DISCOVERY_BURST = const(4)  # HA configs per round (each is built from many small pieces)
_REPLIES_MAX = const(16)  # OTA or config-push replies held for the broker
_PUBACK_WAIT_MS = const(5000)  # a reply that reboots waits this long for its PUBACK


def log(*args):
    print("vegw:", *args)


class Uplink:
    def __init__(self, gw, replay, flog, host, ota_out=(), cfg_out=()):
        self.gw = gw
        self.replay = replay  # log_replay.LogReplay, or None without a flash log
        self.flog = flog
        self.host = host
        self.on = True  # False: a clean stop closed the session (it outlives the readers, to drain)
        self.client = None  # the MQTT client while the task runs (one for the gateway's life)
        self.ota_out = list(ota_out)  # OTA replies for <base>ota/status
        self.cfg_out = list(cfg_out)  # config-push replies for <base>config/status
        self._exporting = False  # a {"cmd":"logs"} export is running
        self.export_busy = 0  # export requests refused while one ran

    def reply(self, out, r):
        """Queue an OTA or config-push reply (bounded: a flood is dropped)."""
        if len(out) < _REPLIES_MAX:
            out.append(r)

    async def run(self, client):
        """The uplink task: (re)connect with backoff until a clean stop."""
        self.client = client
        host = self.host
        backoff = 1
        while self.on:
            host.beat("uplink")
            if not await host.link_ready():
                continue
            rc = await client.connect()
            if rc != 0:
                log("mqtt connect failed:", client.last_error or rc, "- retry in", backoff, "s")
                await self.sleep_beat(backoff + (ticks_ms() % 1000) / 1000)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            backoff = 1
            await host.connected()
            if self.replay is not None:
                self.replay.disconnected()
            await self.pump(client)
            if not self.on:
                break  # a clean stop closed it
            log("mqtt link lost:", client.last_error)
            host.link_lost()

    async def sleep_beat(self, seconds):
        """Sleep, still alive for the watchdog, unless a clean stop comes."""
        end = ticks_add(ticks_ms(), int(seconds * 1000))
        while self.on and ticks_diff(end, ticks_ms()) > 0:
            self.host.beat("uplink")
            await asyncio.sleep(0.2)

    async def pump(self, client):
        """Interleave live messages and the flash-log backlog while connected."""
        gw = self.gw
        disc = None  # discovery config generator in progress
        while self.on and client.is_connected():
            self.host.beat("uplink")
            await self.host.tick()
            if self.ota_out:
                await self.flush(client, self.ota_out, "ota/status", "rebooting into the updated firmware")
            if self.cfg_out:
                await self.flush(client, self.cfg_out, "config/status", "rebooting into the pushed config")
            # live first: states, status, replies; then HA discovery configs
            k = 0
            while len(gw.out) and k < _LIVE_PER_ROUND:
                topic, payload, qos, retain = gw.out.pop()
                await client.publish(topic, payload, retain=retain, qos=qos)
                k += 1
            if not len(gw.out) and (disc is not None or gw.discovery_due()):
                if disc is None:
                    disc = gw.discovery_configs()
                # discovery is the heap's high-water mark: start each burst
                # from a collected heap (a config is built from many small
                # pieces; on a fragmented heap 300 B could not be found). A
                # generator dropped half way (the link went down) leaves its
                # device due: the next session sends it again.
                gc.collect()
                for _ in range(_DISCOVERY_BURST):
                    try:
                        topic, payload = next(disc)
                    except StopIteration:
                        disc = None
                        break
                    await client.publish(topic, payload, retain=True)
            # then the log, oldest unacknowledged first, rate limited
            if self.replay is not None:
                await self.replay.send(client)
            await asyncio.sleep(0.02)
        if self.replay is not None:
            self.replay.disconnected()  # unacknowledged: resent after the next connect

    async def flush(self, client, out, topic, why):
        """Publish OTA or config-push replies; a reply asking for a reboot
        (committed, applied) is acknowledged by the broker before the reset."""
        while out:
            r = out.pop(0)
            pid = await client.publish(self.gw.base + topic, json.dumps(r), qos=1)
            if r.get("reboot"):
                if pid:
                    await client.wait_puback(pid, _PUBACK_WAIT_MS)
                # the clean stop runs in a task of its own: it drains this
                # uplink, then cancels it
                asyncio.create_task(self.host.planned_reset(why))
                return

    def on_message(self, topic, msg):
        """The client's callback: <base>ota/#, <base>cmd, HA's status."""
        gw = self.gw
        t = bytes(topic).decode()
        if t.startswith(gw.base + "ota/"):
            self.host.ota(t[len(gw.base) + 4:], bytes(msg))
        elif t == gw.base + "cmd":
            self.host.command(bytes(msg))
        elif gw.discovery and t == gw.discovery_prefix + "/status" and bytes(msg) == b"online":
            gw.announce_gateway(again=True, now_s=self.host.now())  # HA restarted: discovery again

    def export(self, req):
        """{"cmd":"logs"} (checked by gateway.command): one export at a time,
        each holds a task and a flash reader."""
        if self.flog is None:
            self.gw.reply({"ok": False, "cmd": "logs", "error": "no flash log on this gateway"})
            return
        if self._exporting:
            self.export_busy += 1
            self.gw.reply({"ok": False, "cmd": "logs", "error": "busy: an export is running"})
            return
        self._exporting = True
        asyncio.create_task(self._send_logs(req))

    async def _send_logs(self, req):
        """Records from the flash log to <prefix>/<gw>/logs, one message
        each, then {"done":true,"count":n}."""
        import log_replay

        try:
            c = self.client
            start = req["from_seq"] or self.flog.oldest_seq() or 1
            limit = req["max"]  # 1.._MAX_EXPORT, checked by gateway.command
            n = 0
            for rec in self.flog.read_from(start):
                seq, rtype, payload = self.replay.fixed(rec)
                if n >= limit or c is None or not c.is_connected():
                    break
                await c.publish(self.gw.base + "logs", log_replay.log_message(self.gw.base, seq, rtype, payload)[1], qos=1)
                n += 1
                if n % 20 == 0:
                    await asyncio.sleep(0.05)
            if c is not None:
                await c.publish(self.gw.base + "logs", b'{"done":true,"count":%d}' % n, qos=1)
        except Exception as e:  # noqa: BLE001 - an export must not take the gateway with it
            log("log export failed:", repr(e))
        finally:
            self._exporting = False

