# lib/log_replay.py against a fake MQTT client, on both runtimes: the window,
# the cursor over the acknowledged prefix only, resends, the clock hold and
# conversion, the thin batches.
import asyncio
import json
import struct

import flashlog
import log_replay
import records
from drivers.nor_sim import NorSim

MP_HEAPSIZE = "1M"


class Client:
    """QoS 1 publishes get a pid; acks come when the test says (ack()), or
    at once with eager=True (before publish() returns, as on loopback)."""

    def __init__(self, eager=False, lose=()):
        self.pid = 0
        self.sent = []  # (pid, topic, body)
        self.eager = eager
        self.lose = lose
        self.replay = None
        self.flight = {}
        self.up = True

    def is_connected(self):
        return self.up

    def in_flight(self, pid):
        return pid in self.flight

    async def publish(self, topic, body, retain=False, qos=0, pid_cb=None):
        self.pid += 1
        if pid_cb is not None:
            pid_cb(self.pid)
        self.sent.append((self.pid, topic, body))
        if self.pid in self.lose:
            return self.pid  # never in flight, never acknowledged: the outcome got lost
        self.flight[self.pid] = True
        if self.eager:
            self.ack(self.pid)
        return self.pid

    def ack(self, pid, ok=True):
        self.flight.pop(pid, None)
        self.replay.on_puback(pid, ok)


def make(n, **kw):
    fl = flashlog.FlashLog(NorSim(16, 4096))
    seqs = [fl.append(1, b"record %d" % k) for k in range(n)]
    assert fl.flush()
    r = log_replay.LogReplay(fl, "vegw/g/", **kw)
    return fl, r, seqs


def pump(r, c, rounds=1):
    async def go():
        for _ in range(rounds):
            r._sent_this_s = 0  # the rate limit is not under test here
            await r.send(c)

    asyncio.run(go())


def seq_of(body):
    return json.loads(body)["seq"]


def test_window_bounds_what_is_in_flight_and_cursor_needs_the_acks():
    fl, r, seqs = make(20)
    c = Client()
    c.replay = r
    pump(r, c)
    assert len(c.sent) == log_replay.WINDOW  # no acks yet: the window is full
    pump(r, c)
    assert len(c.sent) == log_replay.WINDOW
    # acks out of order: the cursor moves over the acknowledged prefix only
    c.ack(c.sent[2][0])
    c.ack(c.sent[0][0])
    r.persist(True)
    assert fl.cursor == seqs[0]
    c.ack(c.sent[1][0])
    r.persist(True)
    assert fl.cursor == seqs[2]
    pump(r, c)
    assert [seq_of(b) for p, t, b in c.sent] == seqs[:11]


def test_eager_acks_and_a_refused_one_resend_from_it():
    fl, r, seqs = make(12)
    c = Client()
    c.replay = r
    pump(r, c)
    c.ack(c.sent[0][0])
    c.ack(c.sent[1][0], ok=False)  # timed out: from seqs[1] on again
    c.eager = True
    pump(r, c, rounds=4)
    got = [seq_of(b) for p, t, b in c.sent]
    assert got[log_replay.WINDOW] == seqs[1] and got[-1] == seqs[-1]
    r.persist(True)
    assert fl.cursor == seqs[-1] and r.idle()


def test_an_outcome_lost_is_counted_and_resent():
    fl, r, seqs = make(10)
    c = Client(eager=True, lose=(3,))
    c.replay = r
    pump(r, c, rounds=4)
    assert r.stuck == 1
    got = [seq_of(b) for p, t, b in c.sent]
    # sent again from the lost one on, nothing acknowledged before it twice
    assert got.count(seqs[2]) == 2 and got.count(seqs[0]) == 1 and got.count(seqs[1]) == 1, got
    r.persist(True)
    assert fl.cursor == seqs[-1]


def test_disconnect_keeps_the_acknowledged_prefix():
    fl, r, seqs = make(6)
    c = Client()
    c.replay = r
    pump(r, c)
    c.ack(c.sent[0][0])
    r.disconnected()
    assert fl.cursor == seqs[0] and r.window == []
    c2 = Client(eager=True)
    c2.replay = r
    pump(r, c2, rounds=2)
    assert [seq_of(b) for p, t, b in c2.sent] == seqs[1:]


def test_records_wait_while_the_clock_is_unset_then_go_out_converted():
    unset = [True]
    fl = flashlog.FlashLog(NorSim(16, 4096))
    r = log_replay.LogReplay(fl, "vegw/g/", clock_unset=lambda: unset[0])
    enc = records.MinuteEncoder([("house", ["V"])])
    enc.add(946684800 + 60, [[(1250, 1260, 1270)]])  # a minute block on the 2000 clock
    rt, p = enc.take()
    fl.append(rt, p)
    ev_seq = fl.append(2, b'{"rule":"low","event":"raised","t":946684830,"ts":946684830}')
    fl.flush()
    c = Client(eager=True)
    c.replay = r
    pump(r, c)
    assert c.sent == []
    unset[0] = False
    r.clock_delta = 1767225600 - 946684800
    pump(r, c)
    key = json.loads(c.sent[0][2])
    assert struct.unpack_from("<I", bytes.fromhex(key["hex"]), 0)[0] == 1767225660
    ev = json.loads(c.sent[1][2])
    assert c.sent[1][1] == "vegw/g/event" and ev["t"] == ev["ts"] == 1767225630 and ev["seq"] == ev_seq


def test_thin_batches_wait_for_company_but_events_and_a_stop_do_not():
    import logpack

    fl, r, seqs = make(3, thin=True, hold_ms=60000)
    c = Client(eager=True)
    c.replay = r
    pump(r, c)
    assert c.sent == []  # held for company
    fl.append(2, b'{"rule":"x","event":"raised"}')
    fl.flush()
    pump(r, c)
    assert len(c.sent) == 1 and [s for s, t, p in logpack.unpack(c.sent[0][2])] == seqs + [seqs[-1] + 1]
    fl.append(1, b"late")
    fl.flush()
    pump(r, c)
    assert len(c.sent) == 1
    r.draining = True
    pump(r, c)
    assert len(c.sent) == 2
