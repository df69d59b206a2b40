"""The app's log replay against a fake MQTT client (issue 23.1): a PUBACK
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
    app._REPLAY_PER_S = 1000  # the rate limit is not under test: keep the run short
    client.on_puback = a._on_puback
    a.uplink_on = True
    a.running = True
    asyncio.run(a._pump(client))


def test_puback_before_publish_returns_still_moves_the_cursor():
    a, seqs = make(30)
    c = EagerClient()
    run_pump(a, c)
    assert a.flog.cursor == seqs[-1], (a.flog.cursor, seqs[-1])
    assert len(c.sent) == 30 and a.replay_stuck == 0


def test_lost_outcome_is_detected_and_resent():
    a, seqs = make(12)
    c = EagerClient(lose={3})
    run_pump(a, c)
    assert a.replay_stuck >= 1
    assert a.flog.cursor == seqs[-1]
    assert len(c.sent) > 12  # the record whose outcome was lost went out again
