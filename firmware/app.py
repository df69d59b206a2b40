# Task wiring: the same file runs on the ESP32 (main.py) and under the
# MicroPython unix port (host_main.py, driven by `vegw sim`). Everything that
# touches hardware comes from the `platform` object (drivers/platform_esp32.py or
# drivers/platform_host.py); everything that decides comes from firmware/lib.
#
# Tasks (each bounded, each reporting liveness to the watchdog):
#   reader x N    VE.Direct bytes -> vedirect.Parser -> Gateway.vedirect_block
#   ble           Scanner ring -> Gateway.ble_advert
#   ticker        Gateway.tick once a second (alarms, heartbeats, log window)
#   uplink        link up -> MQTT connect -> outbox + flash-log replay, QoS 1
#                 (lib/uplink.py; this file answers its host calls)
#   watchdog      feeds the hardware WDT only while every task is alive
#
# Length: the task wiring: each task is short, and they share the App's state
# (links, parsers, journals); the MQTT session is uplink.py, its log path log_replay.py, the
# command handlers commands.py, the boot-time config boot_config.py.
import asyncio
import gc
import json
import sys

from clock import ticks_diff, ticks_ms


# The app's modules are imported by _load(), after the config was validated
# and the validator unloaded: boot must not hold both in a ~110 KB heap.
try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython
    TYPE_CHECKING = False
if TYPE_CHECKING:  # what `make lint` checks against
    import alarm_engine
    import ble_readout
    import flashlog
    import gateway
    import log_replay
    import mqtt_async
    import uplink
    import vedirect
else:
    alarm_engine = ble_readout = flashlog = gateway = log_replay = mqtt_async = uplink = vedirect = None


def _load():
    global alarm_engine, ble_readout, flashlog, gateway, log_replay, mqtt_async, uplink, vedirect
    import alarm_engine
    import log_replay
    import ble_readout
    import flashlog
    import gateway
    import mqtt_async
    import uplink
    import vedirect

_READ_BUF = 128  # bytes per UART read; the driver's rx buffer absorbs stalls
_PROOF_CMDS = ("reboot", "log_interval", "config_apply")  # commands that change the gateway: signed only
_CMD_CTR = "cmd_ctr"  # state-store name of the last signed command's counter
_ALARMS_SNAPSHOT = "alarms"  # state-store name of the raised alarms at a clean stop
_SNAPSHOT_MAX_AGE_S = 900  # a snapshot older than this at boot is stale (a crash since)
_WATCHDOG_STALE_MS = 30000  # a task silent this long stops the WDT feed
_BACKOFF_MAX_S = 60
_SAVE_EVERY_S = 3600  # derived metrics to flash (and at a clean stop)
_DRAIN_MS = 8000  # a clean stop waits this long at most for the backlog to go out
_GC_EVERY = 8192  # bytes allocated between collections (gc.threshold), see run()
_HEALTHY_AFTER_S = 30  # connected this long after an OTA update: report healthy
_CLOCK_RETRY_MS = 300000  # asking for the time again while it is unset and the broker is up
_RX_BUF = 2112  # MQTT receive buffer: OTA manifests (2 KB: vegw ota splits larger updates) and chunks (1 KB + header)


def log(*args):
    print("vegw:", *args)


class App:
    def __init__(self, platform, cfg, ota_rx=None, ota_replies=None, safe=False, rules=None, cfg_job=None):
        self.p = platform
        self.cfg = cfg
        self.safe = safe  # crash loop: uplink and commands only, no device readers
        # ota_journal.OtaJournal of an update on trial (startup.py), replaced
        # by an ota_rx.OtaReceiver (which adopts it) when a message arrives
        self.ota_rx = ota_rx
        key = (cfg.get("ota") or {}).get("key")
        # the gateway's own OTA key (bytes); None: every update is refused
        self.ota_key = bytes(int(key[i:i + 2], 16) for i in range(0, len(key), 2)) if key else None
        if ota_rx is not None:  # made at boot, before the config was read
            ota_rx.key = self.ota_key
            ota_rx.gateway = cfg.get("gateway", {}).get("id")
        # a config pushed over MQTT (cfg_push.py): the job of this boot's
        # trial, or made when a push arrives; its replies (and OTA's) wait in
        # the uplink (self.up, made below)
        self.cfg_job = cfg_job[0] if cfg_job else None
        self._cfg_health_ms = getattr(platform, "config_health_ms", None)  # tests shorten it
        if self.cfg_job is not None and self._cfg_health_ms:
            self.cfg_job.health_timeout_ms = self._cfg_health_ms
        self.healthy_after_s = int(getattr(platform, "healthy_after", None) or _HEALTHY_AFTER_S)
        self.alive = {}
        self.parsers = {}  # device name -> vedirect.Parser (its counters go in the status)
        self.scanner = None
        self.running = True  # readers, ticker (the uplink outlives them at a clean stop, to drain)
        self.loop_lag_max_ms = 0
        self.mem_errors = 0  # MemoryErrors survived (status)
        fl = None
        bd = platform.block_device()
        if bd is not None:
            try:
                fl = flashlog.FlashLog(bd)
            except Exception as e:  # a corrupt log must not stop the gateway
                log("flash log unusable:", repr(e))
                fl = None
        self.flog = fl
        devices = [d["name"] for d in cfg.get("devices", ())]
        rules_cfg = cfg.get("alarms") or {}
        if rules is None:  # compiled at boot (load_config) unless given
            import alarm_rules

            rules, errors = alarm_rules.parse_rules(rules_cfg.get("rules") or [],
                                                    alarm_rules.default_field_ok(devices))
            for e in errors:
                log("alarm rule refused:", e)
            del alarm_rules
            _unload("alarm_rules", "field_aliases", "metrics")
        relay = platform.relay()
        stale_by = dict((d["name"], d["stale_timeout"]) for d in cfg.get("devices", ()) if d.get("stale_timeout"))
        self.engine = alarm_engine.Engine(
            rules, stale_s=rules_cfg.get("stale_timeout") or 60, stale_by_device=stale_by,
            builtin=rules_cfg.get("builtin"), devices=devices,
            on_output=(lambda name, sev, on: relay.set(on)) if relay is not None else None,
            ble_devices=[d["name"] for d in cfg.get("devices", ()) if d.get("type") == "ble"])
        tracker = ble_readout.Tracker()
        for d in cfg.get("devices", ()):
            if d.get("type") == "ble":
                problem = tracker.add(d["mac"], d["key"])
                if problem:
                    log("ble device", d["name"], "refused:", problem)
        ms = None
        if platform.state_store() is not None:
            import metrics

            ms = metrics.MetricSet()
            blob = platform.state_store().load("metrics")
            if blob and not ms.from_bytes(blob):
                log("saved metrics unreadable: starting afresh")
        self._restore_alarms(platform.state_store())
        self.gw = gateway.Gateway(cfg, flashlog=fl, engine=self.engine, tracker=tracker, metrics=ms)
        self.gw.status_extra = self._status_extra
        self.mqtt = None
        self.connected_at = None  # time of the last broker connect (OTA health)
        self.tasks = []  # the running tasks (a planned reset stops them)
        self.task_restarts = 0  # tasks that died of an exception and were started again
        self._cmd_ctr = None  # counter of the last signed command (None: not read yet)
        self._resetting = False
        # the flash log to the broker (log_replay.py); after power-on the
        # clock is unset until NTP or the modem sets it: records stamped
        # meanwhile wait in flash and go out converted by its jump
        self.replay = None
        if fl is not None:
            self.replay = log_replay.LogReplay(fl, self.gw.base, thin=self.gw.thin,
                                               hold_ms=(cfg.get("mqtt", {}).get("log_hold") or 0) * 1000,
                                               clock_unset=self.clock_unset, log=log)
        self._clock_try = None  # ticks_ms of the last attempt while unset
        self._tls_wait = 1  # seconds before asking for the time again (TLS without a clock)
        self.up = uplink.Uplink(self.gw, self.replay, fl, self, ota_replies or (), cfg_job[1] if cfg_job else ())
        self.gw.clock_ok = not self.clock_unset()

    # ------------------------------------------------------------ helpers
    def clock_unset(self):
        return hasattr(self.p, "clock_state") and self.p.clock_state() == "unset"

    async def sync_clock(self):
        """Ask the platform for the time (NTP, the modem's clock); at the jump
        from the unset clock the gateway moves what it holds (timefix.py).
        No await between the RTC write and that move: no task sees a half-
        moved state. Returns the source or None."""
        self._clock_try = ticks_ms()
        t0 = ticks_ms()
        before = self.now()
        src = await self.p.sync_clock()
        if src is None:
            return None
        after = self.now()
        import timefix

        if not timefix.valid(before) and timefix.valid(after):
            delta = int(round(after - before - ticks_diff(ticks_ms(), t0) / 1000))
            if self.replay is not None:
                self.replay.clock_delta = delta
            self.gw.clock_set(delta, after, self.replay.boot_seq if self.replay is not None else None)
            self.connected_at = timefix.shift(self.connected_at, delta)
            log("clock set from", src, "- records of this boot move by", delta, "s")
        else:
            log("clock set from", src)
        self.gw.clock_ok = True
        return src

    def now(self):
        return self.p.now_s()

    def mem_error(self, where, e):
        self.mem_errors += 1
        if self.mem_errors <= 3 or self.mem_errors % 100 == 0:
            log("out of memory in", where + ":", repr(e), "(%d so far)" % self.mem_errors)

    def heap_alloc(self):
        # without the simulator's ROM image (flash on a board: host_boot.py)
        return gc.mem_alloc() - getattr(self.p, "rom_bytes", 0)

    def beat(self, name):
        self.alive[name] = ticks_ms()

    def _tls_state(self):
        m = self.cfg.get("mqtt", {})
        if not m.get("tls"):
            return "off"
        return "verified" if m.get("ca") else "encrypted, server not verified (no mqtt.ca)"

    def _status_extra(self):
        gc.collect()  # once a minute: report live data, not garbage
        out = {"heap_free": gc.mem_free(), "heap_alloc": self.heap_alloc(),
               "loop_lag_max_ms": self.loop_lag_max_ms, "mem_errors": self.mem_errors,
               "task_restarts": self.task_restarts,
               # what guards remote change: OTA only with a key; TLS checks the
               # broker only with a CA
               "ota": "signed" if self.ota_key else "off (no ota.key)",
               "clock": self.p.clock_state() if hasattr(self.p, "clock_state") else "host",
               "tls": self._tls_state()}
        out.update(self.p.link_info())
        if self.parsers:
            out["vedirect"] = dict((n, p.counters()) for n, p in self.parsers.items())
        if self.scanner is not None:
            out["ble_scan"] = self.scanner.stats()
        if self.mqtt is not None:
            c = self.mqtt.counters()
            out["mqtt"] = {"connects": c.get("connects"), "disconnects": c.get("disconnects"),
                           "bytes_sent": c.get("bytes_sent"), "timeouts": c.get("timeouts"),
                           "rx_dropped": c.get("rx_dropped"), "rx_unacked": c.get("rx_unacked"),
                           "replay_stuck": self.replay.stuck if self.replay is not None else 0}
        return out

    # ------------------------------------------------------------ tasks
    async def reader(self, dev):
        name = dev["name"]
        parser = vedirect.Parser(lambda blk: self.gw.vedirect_block(name, blk, self.now()))
        self.parsers[name] = parser
        port = self.p.open_vedirect(dev)
        buf = bytearray(_READ_BUF)
        while self.running:
            self.beat("reader:" + name)
            n = await port.read_into(buf)
            if n is None:  # silent gap (device reboot, cable): drop half block
                parser.reset()
                continue
            if n:
                parser.feed(buf, n)

    async def shared_reader(self, devs):
        """Several devices on one UART: the RX pin is time-sliced."""
        import uart_share

        parsers = []
        for d in devs:
            name = d["name"]
            parsers.append(vedirect.Parser((lambda n: lambda blk: self.gw.vedirect_block(n, blk, self.now()))(name)))
            self.parsers[name] = parsers[-1]
        sr = uart_share.SharedReader(self.p.open_shared_uart(devs), parsers)
        buf = bytearray(_READ_BUF)
        tag = "reader:uart%d" % devs[0]["uart"]
        while self.running:
            self.beat(tag)
            await sr.step(buf)

    async def ble(self):
        scanner = self.p.ble_scanner(self.cfg, self._advert)
        if scanner is None:
            return
        self.scanner = scanner
        self.beat("ble")
        await scanner.run()

    def _advert(self, mac, data, rssi):
        self.gw.ble_advert(bytes(mac), bytes(data), rssi, self.now())

    async def ticker(self):
        last_status = 0
        status_every = self.cfg.get("mqtt", {}).get("status_interval") or 300
        last_save = self.now()
        t_prev = ticks_ms()
        while self.running:
            await asyncio.sleep_ms(1000) if hasattr(asyncio, "sleep_ms") else await asyncio.sleep(1)
            t = ticks_ms()
            lag = ticks_diff(t, t_prev) - 1000
            if lag > self.loop_lag_max_ms:
                self.loop_lag_max_ms = lag
            t_prev = t
            self.beat("ticker")
            # the scanner is alive while it runs its windows, adverts or not (a
            # BLE device switched off must not starve the watchdog)
            if self.scanner is not None and self.scanner.scanning:
                self.beat("ble")
            now = self.now()
            try:
                self.gw.tick(now)
                self._ota_health()
                if now - last_status >= status_every:
                    last_status = now
                    self.gw.publish_status(now)
            except MemoryError as e:  # a fragmented heap: this second is lost, not the gateway
                self.mem_error("ticker", e)
            if now - last_save >= _SAVE_EVERY_S:
                last_save = now
                self.save_state()
            if self.gw.reboot_requested and not self._resetting:
                asyncio.create_task(self.planned_reset("reboot requested over MQTT"))

    def _restore_alarms(self, store):
        # Alarms raised when a planned restart (reboot command, OTA, config
        # change) stopped the gateway stay raised: no second "raised" event,
        # the relay as it was. Only a recent snapshot counts, and only once.
        if store is None:
            return
        blob = store.load(_ALARMS_SNAPSHOT)
        if not blob:
            return
        try:
            snap = json.loads(blob)
            store.save(_ALARMS_SNAPSHOT, b"")
            if 0 <= self.now() - snap.get("t", 0) <= _SNAPSHOT_MAX_AGE_S:
                n = self.engine.restore(snap, self.now())
                log("alarms kept over the restart:", n)
        except (ValueError, AttributeError, OSError, TypeError) as e:
            log("alarm snapshot unreadable:", repr(e))

    def save_state(self, alarms=False):
        store = self.p.state_store()
        if alarms and store is not None:
            try:
                snap = self.engine.snapshot()
                snap["t"] = self.now()
                store.save(_ALARMS_SNAPSHOT, json.dumps(snap).encode())
            except (OSError, MemoryError) as e:
                log("saving alarms failed:", repr(e))
        if store is not None and self.gw.metrics is not None:
            gc.collect()
            try:
                store.save("metrics", self.gw.metrics.pieces())
            except (OSError, MemoryError) as e:  # next hour's save tries again
                log("saving metrics failed:", repr(e))

    def all_alive(self, now):
        """True while every task has reported within _WATCHDOG_STALE_MS."""
        return all(ticks_diff(now, t) < _WATCHDOG_STALE_MS for t in self.alive.values())

    async def watchdog(self):
        # The hardware WDT is fed only while every task is alive: a stuck
        # reader, uplink or ticker resets the board instead of hanging it.
        while self.running:
            await asyncio.sleep(1)
            if self.all_alive(ticks_ms()):
                self.p.feed_watchdog()

    async def uplink(self):
        m = self.cfg.get("mqtt", {})
        gw = self.gw
        # One client for the gateway's life: its buffers (6 KB) are allocated
        # once, not at every reconnect (a fragmented heap could not give
        # them back). It re-subscribes and publishes "online" at each connect.
        client = mqtt_async.MQTTClient(
            "vegw-" + gw.gw, m.get("host"), m.get("port") or 0, user=m.get("username"),
            password=m.get("password"), keepalive=m.get("keepalive") or 60,
            ssl=self.p.tls_context(m) if m.get("tls") else None,
            avail_topic=gw.base + "availability", rx_buf=_RX_BUF)
        client.set_callback(self.up.on_message)
        if self.replay is not None:
            client.on_puback = self.replay.on_puback
        self.mqtt = client
        await client.subscribe(gw.base + "cmd", 1)  # offline: taken at each connect
        await client.subscribe(gw.base + "ota/#", 1)
        if gw.discovery:  # Home Assistant's birth message: discovery again
            await client.subscribe(gw.discovery_prefix + "/status", 0)
        await self.up.run(client)

    # ------------------------------------------------------------ the uplink's host (lib/uplink.py)
    async def link_ready(self):
        if not await self.p.network_up():
            await asyncio.sleep(2)
            return False
        m = self.cfg.get("mqtt", {})
        if m.get("tls") and m.get("ca") and self.clock_unset():
            # mbedTLS checks the broker's certificate dates against the
            # clock: at 2000-01-01 (every power-on) the handshake fails
            if await self.sync_clock() is None:
                log("TLS waits for a valid clock (no network time yet) - retry in", self._tls_wait, "s")
                await self.up.sleep_beat(self._tls_wait)
                self._tls_wait = min(self._tls_wait * 2, _BACKOFF_MAX_S)
                return False
        self._tls_wait = 1
        if hasattr(self.p, "resolver"):
            self.mqtt.resolver = self.p.resolver()  # PPP: a lookup that does not block
        return True

    async def connected(self):
        if hasattr(self.p, "link_ok"):
            self.p.link_ok()  # the broker answered: the link passes traffic
        log("mqtt connected to", self.cfg.get("mqtt", {}).get("host"))
        if self.clock_unset():
            # timestamps: ts, records, day metrics
            if await self.sync_clock() is None:
                log("clock not set yet: no network time; log records wait in flash")
        self.connected_at = self.now()
        self.gw.announce_gateway()
        self.gw.publish_status(self.now(), full=True)

    def link_lost(self):
        self.p.link_failed()

    async def tick(self):
        if self._clock_try is not None and self.clock_unset() \
                and ticks_diff(ticks_ms(), self._clock_try) > getattr(self.p, "clock_retry_ms", _CLOCK_RETRY_MS):
            await self.sync_clock()

    def command(self, payload):
        gw = self.gw
        why = self._cmd_proof(payload)
        if why:
            gw.counters["commands_refused"] += 1
            gw.reply({"ok": False, "error": why})
            log("command refused:", why)
            return
        extra = gw.command(payload, self.now())
        if extra is None:
            return
        if extra.get("cmd") in ("config_part", "config_apply"):
            self._config_push(extra)
        elif extra.get("cmd") == "logs":
            self.up.export(extra)
        else:
            self.p.command(extra, gw)

    def _cmd_proof(self, payload):
        """None unless the command changes the gateway (reboot, log_interval)
        and lacks proof: signed with the gateway's key (proof.py), naming it,
        with a counter above the last one taken (kept in the state store: no
        replay). Others (status, ack, logs, signal) rely on the broker ACL."""
        try:
            msg = json.loads(payload)
            name = msg.get("cmd")
        except (ValueError, AttributeError):
            return None  # gateway.command refuses and counts it
        if name not in _PROOF_CMDS:
            return None
        import proof

        store = self.p.state_store()
        last = self._cmd_ctr
        if last is None:
            blob = store.load(_CMD_CTR) if store is not None else None
            last = int(blob) if blob and blob.isdigit() else 0
        why = proof.check_cmd(msg, self.ota_key, self.gw.gw, last)
        if why is None:
            self._cmd_ctr = msg["ctr"]
            if store is not None:
                try:
                    store.save(_CMD_CTR, b"%d" % msg["ctr"])
                except OSError as e:
                    log("saving the command counter failed:", repr(e))
        return why

    def _ota_receiver(self):
        if not hasattr(self.ota_rx, "handle"):  # none yet, or the boot's journal
            import ota_rx  # ~17 KB: loaded when an update arrives, not before

            self.ota_rx = ota_rx.OtaReceiver(self.p.ota_fs(), ticks_ms, key=self.ota_key, gateway=self.gw.gw,
                                             journal=self.ota_rx)
        return self.ota_rx

    def ota(self, suffix, payload):
        if suffix == "status":
            return  # our own replies come back on ota/#
        for r in self._ota_receiver().handle(suffix, payload):
            self.up.reply(self.up.ota_out, r)

    def _ota_health(self):
        at = self.connected_at
        healthy = at is not None and self.now() - at >= self.healthy_after_s
        job = self.cfg_job
        if job is not None:
            if job.tick() and not self._resetting:  # no broker with the pushed config
                asyncio.create_task(self.planned_reset("pushed config not healthy: back to the previous one"))
            elif job.pending() and healthy:
                self.up.cfg_out.extend(job.mark_healthy())
        rx = self.ota_rx
        if rx is None:
            return
        self.up.ota_out.extend(rx.tick())
        if rx.pending() and healthy:
            self.up.ota_out.extend(rx.mark_healthy())

    def _config_push(self, msg):
        if self.cfg_job is None:
            import cfg_push

            self.cfg_job = cfg_push.ConfigPush(self.p.ota_fs(), ticks_ms)
            if self._cfg_health_ms:
                self.cfg_job.health_timeout_ms = self._cfg_health_ms
        if msg["cmd"] == "config_part":
            r = self.cfg_job.part(msg)
        else:
            r = self.cfg_job.apply(msg, self.p.board())
            log("pushed config", msg.get("id"), r["state"], r.get("path") or "", r.get("reason") or "")
        self.up.reply(self.up.cfg_out, r)

    async def run(self, duration_s=None):
        log("starting gateway", self.gw.gw, "firmware", gateway.VERSION, "- tls:", self._tls_state(),
            "- ota:", "signed updates only" if self.ota_key else "off (no ota.key in config.json)")
        tasks = self.tasks
        sup = self._supervised
        tasks += [asyncio.create_task(sup("uplink", self.uplink)), asyncio.create_task(sup("ticker", self.ticker)),
                  asyncio.create_task(sup("watchdog", self.watchdog))]
        if self.safe:
            log("safe mode: device readers off; uplink, commands and OTA stay up")
            self.gw.notice("safe mode after a crash loop: device readers off")
        else:
            tasks.append(asyncio.create_task(sup("ble", self.ble)))
            by_uart = {}
            for d in self.cfg.get("devices", ()):
                if d.get("type") == "vedirect":
                    by_uart.setdefault(d["uart"], []).append(d)
            for devs in by_uart.values():
                if len(devs) == 1:
                    tasks.append(asyncio.create_task(sup("reader:" + devs[0]["name"], self.reader, devs[0])))
                else:  # more devices than UARTs: time-slice the RX pin
                    tasks.append(asyncio.create_task(sup("reader:uart%d" % devs[0]["uart"], self.shared_reader, devs)))
        # Collect often: a collection restarts allocation at the lowest free
        # block, so short-lived objects stay packed low and the free heap in
        # long runs. Collecting only when the heap is full would scatter the
        # survivors of a whole pass over it and leave no 1.5 KB block free
        # (status message) on an ESP32's heap that is a quarter empty.
        if hasattr(gc, "threshold"):
            gc.threshold(_GC_EVERY)
        gc.collect()
        print("vegw: status boot ok heap_alloc=%d heap_free=%d" % (self.heap_alloc(), gc.mem_free()))
        if duration_s is None:
            while True:
                await asyncio.sleep(3600)
        await asyncio.sleep(duration_s)
        await self.stop(tasks)

    async def _supervised(self, name, fn, *args):
        """Run task fn(*args); if it dies of an exception, log it, count it
        (status task_restarts) and start it again after a backoff (1 s, then
        doubling to 60 s), instead of leaving a dead reader for the watchdog
        to notice 30 s later with a reset."""
        backoff = 1
        while self.running:
            try:
                await fn(*args)
                return  # finished by design (stop, no BLE devices)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any bug in a task
                self.task_restarts += 1
                log("task", name, "died:", repr(e), "- restart in", backoff, "s")
                if hasattr(sys, "print_exception"):
                    sys.print_exception(e)  # where: the console is the only witness
                for _ in range(backoff):
                    if not self.running:
                        return
                    if name in self.alive:
                        self.beat(name)  # the restart is under way, not a hang
                    await asyncio.sleep(1)
                backoff = min(backoff * 2, 60)

    async def planned_reset(self, why):
        """Every planned reset (reboot command, OTA commit or rollback, config
        change) goes through the clean stop: aggregates and events to flash,
        derived metrics and raised alarms saved, the uplink drained, then the
        reset."""
        if self._resetting:
            return
        self._resetting = True
        log(why + ": stopping cleanly, then reset")
        try:
            await self.stop(self.tasks)
        except Exception as e:  # noqa: BLE001 - the reset must happen regardless
            log("clean stop failed:", repr(e))
        self.p.reset()

    async def stop(self, tasks):
        """Clean stop: readers and timers stop, the open log window and block
        go to flash, the uplink delivers what is queued and logged (bounded),
        then "offline" is announced (the will is for crashes) and the link
        closed."""
        self.running = False
        if self.replay is not None:
            self.replay.draining = True  # nothing held back for company now
        now = self.now()
        self.gw.tick(now)
        if self.flog is not None:
            self.gw.close(now)
        self.save_state(alarms=True)
        try:
            self.gw.publish_status(now)  # the last word: counters as they ended
        except MemoryError as e:
            self.mem_error("stop", e)
        c = self.mqtt
        t0 = ticks_ms()
        while c is not None and c.is_connected() and ticks_diff(ticks_ms(), t0) < _DRAIN_MS:
            if not len(self.gw.out) and (self.replay is None or self.replay.idle()):
                break
            await asyncio.sleep(0.05)
        self.up.on = False
        await asyncio.sleep(0.05)
        if c is not None and c.is_connected():
            while len(self.gw.out):
                topic, payload, qos, retain = self.gw.out.pop()
                await c.publish(topic, payload, retain=retain, qos=qos)
            await c.publish(self.gw.base + "availability", b"offline", retain=True, qos=1)
            await asyncio.sleep(0.2)
            if self.replay is not None:
                self.replay.persist(True)
            await c.disconnect()
        for t in tasks:
            t.cancel()
        await asyncio.sleep(0)
        log("stopped")


def _unload(*names):
    # Boot-only modules leave RAM once used (the heap is ~110 KB on a board).
    for n in names:
        sys.modules.pop(n, None)
    gc.collect()


RESTART = 4  # main(): config validated and cached, boot again (boot_config.py)


def main(platform, duration_s=None, ota_rx=None, ota_replies=None, safe=False, cfg_job=None):
    """cfg_job: (cfg_push.ConfigPush, replies) when a pushed config.json is
    on trial this boot (startup.py), else None."""
    import boot_config

    # this boot runs whatever the cache says when an update or a pushed
    # config is on trial, or when their journals left replies to publish
    # (a validating boot's restart would lose them)
    trial = ota_rx is not None or bool(ota_replies) or (cfg_job is not None and (cfg_job[0].pending() or cfg_job[1]))
    got = boot_config.load_config(platform, restart=not trial)
    del boot_config
    _unload("boot_config")  # boot only
    if got is None:
        log("no valid config: nothing started, the REPL stays up (fix config.json and reset)")
        return 1
    if got == RESTART:
        return RESTART
    cfg, rules = got
    if ota_rx is None and "ota_rx" not in sys.modules:
        # RAM: an entry point that did `import ota_rx` at top level and dropped it
        # from sys.modules still pins it (~15 KB) through its global name
        m = sys.modules.get("__main__")
        if getattr(m, "ota_rx", None) is not None:
            m.ota_rx = None
    _load()
    app = App(platform, cfg, ota_rx, ota_replies, safe, rules, cfg_job)
    try:
        asyncio.run(app.run(duration_s))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(0)
