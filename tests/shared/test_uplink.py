# lib/uplink.py against a fake MQTT client and a fake host (the app's side),
# on both runtimes: what goes out first, discovery paced and never lost to a
# dropped link, a reboot reply acknowledged before the reset, reconnects,
# message routing, one log export at a time.
import asyncio
import json

import alarm_engine
import ble_readout
import flashlog
import gateway
import log_replay
import uplink
import vedirect
from _util import ve_block as block
from drivers.nor_sim import NorSim

MP_HEAPSIZE = "1M"


class Client:
    """Connects as scripted (rcs: connect() results in order, then 0); a
    session ends after `rounds` is_connected() calls; QoS 1 publishes are
    acknowledged at once unless `hold` names the topic."""

    def __init__(self, rcs=(), rounds=1000, hold=()):
        self.rcs = list(rcs)
        self.rounds = rounds
        self.left = rounds  # pump() alone runs one session
        self.sent = []  # (topic, body, qos, retain)
        self.pid = 0
        self.hold = hold
        self.waited = []  # pids wait_puback() was asked for
        self.connects = 0
        self.last_error = None
        self.on_puback = None

    async def connect(self):
        rc = self.rcs.pop(0) if self.rcs else 0
        if rc == 0:
            self.connects += 1
            self.left = self.rounds
        else:
            self.last_error = "refused %d" % rc
        return rc

    def is_connected(self):
        self.left -= 1
        return self.left > 0

    def in_flight(self, pid):
        return False

    async def publish(self, topic, body, retain=False, qos=0, pid_cb=None):
        if isinstance(body, str):
            body = body.encode()
        self.sent.append((topic, bytes(body) if not isinstance(body, tuple) else b"".join(body), qos, retain))
        if not qos:
            return 0
        self.pid += 1
        if pid_cb is not None:
            pid_cb(self.pid)
        if self.on_puback is not None and topic not in self.hold:
            self.on_puback(self.pid, True)
        return self.pid

    async def wait_puback(self, pid, timeout_ms):
        self.waited.append(pid)
        return True

    def topics(self):
        return [t for t, b, q, r in self.sent]


class Host:
    def __init__(self):
        self.beats = 0
        self.t = 1_700_000_000
        self.ready = []  # link_ready() answers in order, then True
        self.connected_n = 0
        self.lost = 0
        self.ota_in = []
        self.cmd_in = []
        self.resets = []
        self.up = None
        self.stop_after = None  # sessions, then a clean stop

    def beat(self, name):
        assert name == "uplink"
        self.beats += 1

    def now(self):
        return self.t

    async def link_ready(self):
        ok = self.ready.pop(0) if self.ready else True
        if not ok:
            await asyncio.sleep(0)
        return ok

    async def connected(self):
        self.connected_n += 1
        self.up.gw.announce_gateway()

    def link_lost(self):
        self.lost += 1
        if self.stop_after is not None and self.lost >= self.stop_after:
            self.up.on = False

    async def tick(self):
        pass

    def ota(self, suffix, payload):
        self.ota_in.append((suffix, payload))

    def command(self, payload):
        self.cmd_in.append(payload)

    async def planned_reset(self, why):
        self.resets.append(why)


def site(records=0):
    cfg = {"gateway": {"id": "u1"}, "mqtt": {"prefix": "vegw", "discovery": True},
           "devices": [{"name": "house", "type": "vedirect"}], "alarms": {}, "log": {"interval": 60}}
    fl = flashlog.FlashLog(NorSim(16, 4096))
    gw = gateway.Gateway(cfg, flashlog=fl, engine=alarm_engine.Engine([], devices=["house"]),
                         tracker=ble_readout.Tracker())
    vedirect.Parser(lambda b: gw.vedirect_block("house", b, 1)).feed(
        block([(b"PID", b"0x203"), (b"SER#", b"HQ1"), (b"V", b"12000"), (b"I", b"-500"), (b"SOC", b"900")]))
    for k in range(records):
        fl.append(1, b"record %d" % k)
    assert fl.flush()
    host = Host()
    r = log_replay.LogReplay(fl, gw.base)
    up = uplink.Uplink(gw, r, fl, host)
    host.up = up
    return gw, up, host


def test_live_messages_go_before_discovery_and_discovery_comes_in_bursts():
    gw, up, host = site()
    up.replay = None  # no flash log: is_connected() counts pump rounds only
    while len(gw.out):
        gw.out.pop()
    gw.announce_gateway()
    for k in range(12):  # live messages waiting (the outbox holds 16): 8 per round
        gw.out.put("vegw/u1/x", b"%d" % k)
    c = Client(rounds=3)  # two rounds
    asyncio.run(up.pump(c))
    t = c.topics()
    # round 1: 8 live; round 2: the other 4, then (outbox empty) one burst of 4 configs
    assert t[:12] == ["vegw/u1/x"] * 12, t
    assert len(t) == 16 and all(x.startswith("homeassistant/") for x in t[12:]), t
    assert gw.discovery_due()  # the rest waits for the next rounds
    c = Client(rounds=3)  # a new session: the device cut off after one config goes again whole
    asyncio.run(up.pump(c))
    again = c.topics()
    assert all("_HQ1_" in x for x in again) and len(set(again)) == len(again) == 3, again
    assert set(x for x in t[12:] if "_HQ1_" in x) < set(again)
    assert not gw.discovery_due()


def test_a_dropped_link_in_the_middle_of_discovery_loses_no_config():
    gw, up, host = site()
    gw.announce_gateway()
    whole = [t for t, p in gw.discovery_configs()]
    assert len(whole) > 4
    gw.announce_gateway(again=True, now_s=10_000)  # due again, the same set
    while len(gw.out):
        gw.out.pop()
    c = Client(rounds=2)  # the link drops after one burst
    asyncio.run(up.pump(c))
    assert 0 < len(c.topics()) < len(whole) and gw.discovery_due()
    c2 = Client(rounds=200)
    asyncio.run(up.pump(c2))
    got = set(c.topics()) | set(c2.topics())
    assert set(whole) <= got and not gw.discovery_due()


def test_a_reboot_reply_is_acknowledged_before_the_reset_and_later_replies_wait():
    gw, up, host = site()
    up.reply(up.ota_out, {"state": "committed", "reboot": True})
    up.reply(up.ota_out, {"state": "after"})
    up.reply(up.cfg_out, {"state": "applied"})
    c = Client(rounds=2)

    async def go():
        await up.pump(c)
        await asyncio.sleep(0)  # the reset task runs

    asyncio.run(go())
    sent = [(t, json.loads(b)) for t, b, q, r in c.sent if t.endswith("/status") and q == 1]
    assert sent[0] == ("vegw/u1/ota/status", {"state": "committed", "reboot": True})
    assert c.waited == [1] and host.resets == ["rebooting into the updated firmware"]
    assert up.ota_out == [{"state": "after"}]  # not sent: the gateway is going down
    assert ("vegw/u1/config/status", {"state": "applied"}) in sent
    for k in range(40):
        up.reply(up.cfg_out, {"n": k})
    assert len(up.cfg_out) == 16  # bounded


def test_reconnects_after_a_refusal_and_a_lost_link_and_stops_cleanly():
    gw, up, host = site(records=5)
    host.ready = [False, True]
    host.stop_after = 2
    c = Client(rcs=[5], rounds=30)
    c.on_puback = up.replay.on_puback
    log_replay.PER_S = 1000
    asyncio.run(up.run(c))
    assert c.connects == 2 and host.connected_n == 2 and host.lost == 2
    assert host.beats > 0 and up.client is c
    logs = [t for t in c.topics() if t.startswith("vegw/u1/log")]
    assert len(logs) >= 5 and up.replay.idle()


def test_messages_are_routed_to_the_host_and_ha_online_announces_again():
    gw, up, host = site()
    gw.announce_gateway()
    list(gw.discovery_configs())
    assert not gw.discovery_due()
    up.on_message(b"vegw/u1/ota/manifest", b"m")
    up.on_message(memoryview(b"vegw/u1/cmd"), bytearray(b'{"cmd":"status"}'))
    up.on_message(b"vegw/u1/other", b"x")
    up.on_message(b"vegw/u2/cmd", b"x")
    assert host.ota_in == [("manifest", b"m")] and host.cmd_in == [b'{"cmd":"status"}']
    assert not gw.discovery_due()
    host.t += 3600
    up.on_message(b"homeassistant/status", b"online")
    assert gw.discovery_due()


def test_one_log_export_at_a_time():
    gw, up, host = site(records=30)
    c = Client(rounds=10_000)
    up.client = c
    c.left = 10_000
    while len(gw.out):
        gw.out.pop()

    async def go():
        for _ in range(5):
            up.export({"cmd": "logs", "from_seq": 0, "max": 25})
        for _ in range(200):
            await asyncio.sleep(0.01)
            if not up._exporting:
                break

    asyncio.run(go())
    logs = [b for t, b, q, r in c.sent if t == "vegw/u1/logs"]
    assert len(logs) == 26 and logs[-1] == b'{"done":true,"count":25}'
    assert up.export_busy == 4 and not up._exporting
    busy = []
    while len(gw.out):
        busy.append(gw.out.pop()[1])
    assert len([b for b in busy if b"busy" in b]) == 4
    up.flog = None
    up.export({"cmd": "logs", "from_seq": 0, "max": 5})
    assert b"no flash log" in gw.out.pop()[1]
