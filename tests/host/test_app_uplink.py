"""The app's log replay (lib/log_replay.py, wired by app.py) against a fake MQTT client (issue 23.1): a PUBACK
handled before publish() returns must still count, and an entry whose
outcome got lost is resent, never left to wedge the window."""
import asyncio
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "firmware" / "lib"), str(ROOT / "firmware")]

import app  # noqa: E402
from drivers.nor_sim import NorSim  # noqa: E402


class Platform:
    def __init__(self):
        self.bd = NorSim(16, 4096)

    def block_device(self):
        return self.bd

    def relay(self):
        return None

    def state_store(self):
        return None

    def feed_watchdog(self):
        pass

    def now_s(self):
        return 1_700_000_000

    def link_info(self):
        return {}


class EagerClient:
    """Acknowledges every QoS 1 publish synchronously, before publish()
    returns: what a loopback broker does when the reader task runs first.
    `lose` lists the packet ids whose outcome never arrives at all."""

    def __init__(self, lose=(), budget=40):
        self.pid = 0
        self.sent = []
        self.lose = set(lose)
        self.on_puback = None
        self.budget = budget  # is_connected() calls before the "link" ends

    def is_connected(self):
        self.budget -= 1
        return self.budget > 0

    def in_flight(self, pid):
        return False

    async def publish(self, topic, body, retain=False, qos=0, pid_cb=None):
        if not qos:
            return 0
        self.pid += 1
        if pid_cb is not None:
            pid_cb(self.pid)
        self.sent.append(self.pid)
        if self.pid not in self.lose:
            self.on_puback(self.pid, True)
        return self.pid


def make(records):
    app._load()
    cfg = {"gateway": {"id": "u"}, "mqtt": {"host": "127.0.0.1"}, "alarms": {}, "devices": []}
    a = app.App(Platform(), cfg)
    seqs = [a.flog.append(1, b"record %d" % k) for k in range(records)]
    assert a.flog.flush()
    return a, seqs


def run_pump(a, client):
    import log_replay

    log_replay.PER_S = 1000  # the rate limit is not under test: keep the run short
    client.on_puback = a.replay.on_puback
    a.up.on = True
    a.running = True
    asyncio.run(a.up.pump(client))


def test_puback_before_publish_returns_still_moves_the_cursor():
    a, seqs = make(30)
    c = EagerClient()
    run_pump(a, c)
    assert a.flog.cursor == seqs[-1], (a.flog.cursor, seqs[-1])
    assert len(c.sent) == 30 and a.replay.stuck == 0


def test_lost_outcome_is_detected_and_resent():
    a, seqs = make(12)
    c = EagerClient(lose={3})
    run_pump(a, c)
    assert a.replay.stuck >= 1
    assert a.flog.cursor == seqs[-1]
    assert len(c.sent) > 12  # the record whose outcome was lost went out again


# ---- planned resets go through the clean stop (issue 23.7)

class StorePlatform(Platform):
    def __init__(self, folder, bd=None):
        from drivers.state_store import FileStore

        self.bd = bd or NorSim(16, 4096)
        self.store = FileStore(folder)
        self.resets = 0
        self.t = 1_700_000_000

    def state_store(self):
        return self.store

    def now_s(self):
        return self.t

    def reset(self):
        self.resets += 1


def _site(platform):
    app._load()
    cfg = {"gateway": {"id": "r"}, "mqtt": {"host": "127.0.0.1"}, "log": {"interval": 60},
           "alarms": {"builtin": {"stale": False}},
           "devices": [{"name": "house", "type": "vedirect", "uart": 1, "rx": 16}]}
    import alarm_rules

    rules, errors = alarm_rules.parse_rules(["low: alarm: house.V < 24"], alarm_rules.default_field_ok(["house"]))
    assert not errors
    return app.App(platform, cfg, rules=rules)


def _feed(a, volts, now):
    import vedirect

    body = b"\r\nPID\t0x203\r\nV\t%d\r\nI\t-1000\r\nChecksum\t" % int(volts * 1000)
    blk = body + bytes(((256 - sum(body)) & 0xFF,))
    vedirect.Parser(lambda b: a.gw.vedirect_block("house", b, now)).feed(blk)


def _events(a):
    import json as _json
    import gateway

    return [_json.loads(p) for s, t, p in a.flog.read_from(1) if t == gateway.REC_EVENT]


def test_reboot_command_stops_cleanly_and_keeps_raised_alarms(tmp_path):
    p = StorePlatform(str(tmp_path))
    a = _site(p)
    for k in range(30):  # half a log window of readings, one alarm raised
        _feed(a, 23.5, p.t + k)
    p.t += 30
    assert a.engine.active() == ["low"]
    a.gw.command(b'{"cmd":"reboot"}', p.t)
    assert a.gw.reboot_requested

    async def go():
        a.running = True
        a.up.on = True
        t = asyncio.create_task(a.ticker())
        for _ in range(40):
            await asyncio.sleep(0.1)
            if p.resets:
                break
        t.cancel()

    asyncio.run(go())
    assert p.resets == 1
    # the open window's aggregates reached flash before the reset
    import gateway

    recs = [t for s, t, _ in a.flog.read_from(1) if t != gateway.REC_EVENT]
    assert recs, "aggregates of the open window lost"
    raised = [e for e in _events(a) if e["event"] == "raised"]
    assert [e["rule"] for e in raised] == ["low"]
    # boot again on the same flash and state: the alarm is still raised and
    # is not raised a second time
    p2 = StorePlatform(str(tmp_path), bd=p.bd)
    p2.t = p.t + 20
    b = _site(p2)
    assert b.engine.active() == ["low"]
    _feed(b, 23.4, p2.t + 1)
    b.gw.tick(p2.t + 2)
    b.gw.close(p2.t + 2)
    raised = [e for e in _events(b) if e["event"] == "raised"]
    assert [e["rule"] for e in raised] == ["low"], raised


class SlowClient:
    def __init__(self):
        self.sent = []

    def is_connected(self):
        return True

    async def publish(self, topic, body, retain=False, qos=0, pid_cb=None):
        await asyncio.sleep(0.001)
        self.sent.append((topic, body))
        return 1 if qos else 0


def test_one_log_export_at_a_time_and_bad_arguments_refused():
    # issue 23.6: 200 requests started 200 exports and ran the heap out
    a, seqs = make(50)
    a.mqtt = a.up.client = SlowClient()
    topic = a.gw.base + "cmd"

    async def go():
        for _ in range(200):
            a.up.on_message(topic.encode(), b'{"cmd":"logs","max":50}')
        a.up.on_message(topic.encode(), b'{"cmd":"logs","from_seq":"x"}')
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not a.up._exporting:
                break

    asyncio.run(go())
    assert not a.up._exporting and a.up.export_busy == 199
    logs = [b for t, b in a.mqtt.sent if t.endswith("/logs")]
    assert len(logs) == 51 and logs[-1] == b'{"done":true,"count":50}'
    replies = []
    while len(a.gw.out):
        t, p, _, _ = a.gw.out.pop()
        if t.endswith("cmd/reply"):
            replies.append(p)
    assert sum(1 for r in replies if b"busy" in r) >= 1
    assert any(b"from_seq must be an integer" in r for r in replies)


# ---- a task that dies is restarted (issue 23.3)

def test_a_reader_that_dies_is_restarted_and_counted():
    import vedirect

    a, _ = make(0)
    a.cfg["devices"] = [{"name": "house", "type": "vedirect", "uart": 1, "rx": 16}]
    a.gw.devices  # the reader only needs the parser and the port
    body = b"\r\nPID\t0x203\r\nV\t12800\r\nChecksum\t"
    good = body + bytes(((256 - sum(body)) & 0xFF,))
    opened = []

    class Port:
        def __init__(self, k):
            self.k = k
            self.reads = 0

        async def read_into(self, buf):
            self.reads += 1
            await asyncio.sleep(0.01)
            if self.k == 0 and self.reads == 2:
                raise ValueError("a bug in a driver")
            buf[: len(good)] = good
            return len(good)

    def open_vedirect(dev):
        opened.append(Port(len(opened)))
        return opened[-1]

    a.p.open_vedirect = open_vedirect
    blocks = []
    orig = a.gw.vedirect_block
    a.gw.vedirect_block = lambda n, b, t: blocks.append(n) or orig(n, b, t)

    async def go():
        a.running = True
        t = asyncio.create_task(a._supervised("reader:house", a.reader, a.cfg["devices"][0]))
        await asyncio.sleep(1.5)
        a.running = False
        await asyncio.sleep(0.05)
        t.cancel()

    asyncio.run(go())
    assert a.task_restarts == 1
    assert len(opened) == 2 and opened[1].reads > 5  # running again after the backoff
    assert len(blocks) > 5


# ---- commands that change the gateway need proof (issue 22)

def test_reboot_and_log_interval_need_a_signed_command(tmp_path):
    import json as _json

    import proof

    p = StorePlatform(str(tmp_path))
    key = proof.derive_key(b"f" * 32, "r")
    a = _site(p)
    a.ota_key = key
    topic = (a.gw.base + "cmd").encode()

    def signed(msg, k=key):
        msg = dict(msg)
        msg["sig"] = proof.hexsig(k, proof.cmd_text(msg))
        return _json.dumps(msg).encode()

    def replies():
        out = []
        while len(a.gw.out):
            t, pl, _, _ = a.gw.out.pop()
            if t.endswith("cmd/reply"):
                out.append(_json.loads(pl))
        return out

    a.up.on_message(topic, b'{"cmd":"reboot"}')
    a.up.on_message(topic, signed({"cmd": "reboot", "gw": "other", "ctr": 5}))
    a.up.on_message(topic, signed({"cmd": "reboot", "gw": "r", "ctr": 5}, k=proof.derive_key(b"f" * 32, "other")))
    r = replies()
    assert [x["ok"] for x in r] == [False, False, False] and not a.gw.reboot_requested
    assert "not signed" in r[0]["error"] and "not signed" in r[1]["error"] and "bad signature" in r[2]["error"]
    a.up.on_message(topic, signed({"cmd": "log_interval", "seconds": 120, "gw": "r", "ctr": 5}))
    assert a.gw.log_interval == 120
    a.up.on_message(topic, signed({"cmd": "log_interval", "seconds": 300, "gw": "r", "ctr": 5}))  # replayed
    assert a.gw.log_interval == 120 and "replayed" in replies()[-1]["error"]
    # the counter survives a restart (state store)
    b = _site(StorePlatform(str(tmp_path), bd=p.bd))
    b.ota_key = key
    b.up.on_message(topic, signed({"cmd": "reboot", "gw": "r", "ctr": 5}))
    assert not b.gw.reboot_requested
    b.up.on_message(topic, signed({"cmd": "reboot", "gw": "r", "ctr": 6}))
    assert b.gw.reboot_requested
    # status and the others rely on the broker ACL
    b.up.on_message(topic, b'{"cmd":"status"}')
    assert any(x.get("cmd") == "status" and x["ok"] for x in [_json.loads(pl) for t, pl, _, _ in
                                                             [b.gw.out.pop() for _ in range(len(b.gw.out))]
                                                             if t.endswith("cmd/reply")])


def test_vegw_cmd_signs_what_the_gateway_checks():
    import argparse

    import proof
    from vegw import cmd_cmd

    p = argparse.ArgumentParser()
    cmd_cmd.add_arguments(p)
    args = p.parse_args(["--broker", "127.0.0.1:1", "--gateway", "site-1", "--fleet-key", "ab" * 32,
                         "log_interval", "--seconds", "300"])
    msg = cmd_cmd.message(args)
    key = proof.derive_key(bytes.fromhex("ab" * 32), "site-1")
    assert proof.check_cmd(msg, key, "site-1", 0) is None
    assert proof.check_cmd(msg, key, "site-2", 0) == "not signed for this gateway"
    assert "replayed" in proof.check_cmd(msg, key, "site-1", msg["ctr"])
    status = p.parse_args(["--broker", "127.0.0.1:1", "--gateway", "site-1", "status"])
    assert cmd_cmd.message(status) == {"cmd": "status"}  # not signed: the ACL guards it
    unsigned = p.parse_args(["--broker", "127.0.0.1:1", "--gateway", "site-1", "reboot"])
    try:
        cmd_cmd.message(unsigned)
        raise AssertionError("reboot without a key was built")
    except ValueError as e:
        assert "--fleet-key" in str(e)
