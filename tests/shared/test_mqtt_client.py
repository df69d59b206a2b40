# mqtt_async.MQTTClient against a scripted fake broker on loopback (asyncio
# start_server), on CPython and MicroPython: what a broken or hostile broker
# sends must end in a return code, a dropped link or a counter, never in an
# exception in the caller.
import asyncio

import mqtt_async as M
from _util import Rng

_rng = Rng(1234)
CONNACK_OK = b"\x20\x02\x00\x00"


class Fake:
    """One-connection fake broker running `script(fake, reader, writer)`."""

    def __init__(self, script):
        self.script = script
        self.server = None
        self.port = 0
        self.got = []  # (first byte, body bytes) received from the client
        self.fr = M.Framer(512)
        self.done = False
        self.eof = False

    async def start(self):
        for _ in range(30):
            port = 40000 + _rng.below(20000)
            try:
                self.server = await asyncio.start_server(self._conn, "127.0.0.1", port)
                self.port = port
                return self
            except OSError:
                pass
        raise AssertionError("no free port")

    async def _conn(self, r, w):
        try:
            await self.script(self, r, w)
        finally:
            self.done = True

    async def recv(self, r, n=1, timeout=2.0):
        """Wait until n packets in total were received from the client."""
        while len(self.got) < n:
            data = await asyncio.wait_for(r.read(256), timeout)
            if not data:
                return False
            self.fr.feed(data, lambda f, b: self.got.append((f, bytes(b))))
        return True

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


async def _send(w, data):
    w.write(data)
    await w.drain()


async def _idle(fake, r, w):
    # keep the connection open, answer nothing more; note when the client
    # closes its end
    try:
        while await r.read(256):
            pass
        fake.eof = True
    except Exception:
        pass


def _client(port, **kw):
    kw.setdefault("connect_timeout_ms", 1000)
    kw.setdefault("keepalive", 0)
    return M.MQTTClient("t", "127.0.0.1", port, **kw)


def test_connack_refused_code_returned():
    async def script(fake, r, w):
        await fake.recv(r)
        await _send(w, b"\x20\x02\x00\x05")  # not authorized
        await _idle(fake, r, w)

    async def main():
        f = await Fake(script).start()
        c = _client(f.port)
        rc = await c.connect()
        await f.stop()
        return rc, c

    rc, c = asyncio.run(main())
    assert rc == 5 and not c.is_connected()
    assert c.conn_failures == 1 and c.connects == 0
    assert "connack rc 5" in c.last_error


def test_no_connack_times_out():
    async def script(fake, r, w):
        await _idle(fake, r, w)  # a black hole that accepted the TCP connection

    async def main():
        f = await Fake(script).start()
        c = _client(f.port, connect_timeout_ms=300)
        t0 = M.ticks_ms()
        rc = await c.connect()
        dt = M.ticks_diff(M.ticks_ms(), t0)
        await f.stop()
        return rc, dt, c

    rc, dt, c = asyncio.run(main())
    assert rc == M.ERR_TIMEOUT and 250 <= dt < 1500, (rc, dt)
    assert not c.is_connected()


def test_connect_packet_seen_by_broker():
    async def script(fake, r, w):
        await fake.recv(r)
        await _send(w, CONNACK_OK)
        await fake.recv(r, 2)  # the retained "online"
        await _idle(fake, r, w)

    async def main():
        f = await Fake(script).start()
        c = _client(f.port, user="u", password="p", keepalive=30, avail_topic="vegw/g/availability")
        rc = await c.connect()
        await asyncio.sleep(0.1)
        await f.stop()
        return rc, f.got

    rc, got = asyncio.run(main())
    assert rc == 0
    first, body = got[0]
    assert first == 0x10
    # flags: user 0x80, password 0x40, will retain 0x20, will QoS 1 0x08,
    # will 0x04, clean 0x02 = 0xee; keepalive 30
    assert body[:10] == b"\x00\x04MQTT\x04\xee\x00\x1e"
    assert b"vegw/g/availability" in body and b"offline" in body
    first, body = got[1]
    assert first == 0x33  # PUBLISH QoS 1 retain
    m = M.dec_publish(first, body)
    assert m[0] == b"vegw/g/availability" and m[1] == b"online"


def test_malformed_length_drops_link_without_raising():
    async def script(fake, r, w):
        await fake.recv(r)
        await _send(w, CONNACK_OK)
        await asyncio.sleep(0.05)
        await _send(w, b"\x30\xff\xff\xff\xff\x01")
        await _idle(fake, r, w)

    async def main():
        f = await Fake(script).start()
        c = _client(f.port)
        reasons = []
        c.on_disconnect = reasons.append
        rc = await c.connect()
        await asyncio.sleep(0.3)
        await f.stop()
        return rc, reasons, c

    rc, reasons, c = asyncio.run(main())
    assert rc == 0 and reasons == ["malformed packet"]
    assert not c.is_connected() and c.disconnects == 1


def test_broker_closing_is_reported():
    async def script(fake, r, w):
        await fake.recv(r)
        await _send(w, CONNACK_OK)
        await asyncio.sleep(0.05)
        w.close()
        await w.wait_closed()  # on MicroPython close() alone does nothing

    async def main():
        f = await Fake(script).start()
        c = _client(f.port)
        rc = await c.connect()
        await asyncio.sleep(0.3)
        pub = await c.publish("t", b"x")
        await f.stop()
        return rc, c, pub

    rc, c, pub = asyncio.run(main())
    assert rc == 0 and not c.is_connected()
    assert c.last_error == "closed by broker"
    assert pub is None and c.not_connected == 1


def test_bad_publish_and_callback_error_keep_link():
    async def script(fake, r, w):
        await fake.recv(r)
        await _send(w, CONNACK_OK)
        await asyncio.sleep(0.05)
        await _send(w, b"\x30\x03\x00\x09x")  # topic length past the end
        await _send(w, b"\x30\x07\x00\x01tboom")  # the callback raises on this
        await _send(w, b"\x40\x02\x12\x34")  # PUBACK for a pid never used
        await _send(w, b"\x32\x07\x00\x01c\x00\x2aok")  # QoS 1, pid 42: we owe a PUBACK
        await fake.recv(r, 2)
        await _idle(fake, r, w)

    async def main():
        f = await Fake(script).start()
        c = _client(f.port)
        got = []

        def cb(t, m):
            if m == b"boom":
                raise ValueError("app bug")
            got.append((t, m))
        c.set_callback(cb)
        rc = await c.connect()
        await asyncio.sleep(0.3)
        res = (rc, c.is_connected(), got, c.last_error, c._framer.malformed, c.received, f.got)
        await f.stop()
        return res

    rc, connected, got, err, malformed, received, fgot = asyncio.run(main())
    assert rc == 0 and connected
    assert got == [(b"c", b"ok")]
    assert err.startswith("callback:")
    assert malformed == 1 and received == 2
    assert fgot[1] == (0x40, b"\x00\x2a")  # our PUBACK for pid 42


def test_unanswered_qos1_times_out_and_frees_slot():
    async def script(fake, r, w):
        await fake.recv(r)
        await _send(w, CONNACK_OK)
        await fake.recv(r, 3)
        # acknowledge only the second publish
        m = M.dec_publish(fake.got[2][0], fake.got[2][1])
        await _send(w, b"\x40\x02" + bytes([m[4] >> 8, m[4] & 0xFF]))
        await _idle(fake, r, w)

    async def main():
        f = await Fake(script).start()
        c = _client(f.port, ack_timeout_ms=300, max_inflight=2)
        res = []
        c.on_puback = lambda pid, ok: res.append((pid, ok))
        await c.connect()
        p1 = await c.publish("a", b"1", qos=1)
        p2 = await c.publish("a", b"2", qos=1)
        ok2 = await c.wait_puback(p2, 1000)
        # window of 2, p1 still out: a third waits for a slot, which p1's
        # timeout frees
        p3 = await c.publish("a", b"3", qos=1)
        ok1 = await c.wait_puback(p1, 10)
        ok3 = await c.wait_puback(p3, 1000)
        out = (p1, p2, p3, ok1, ok2, ok3, res, c.timeouts, c.pubacks, c.inflight(), c.is_connected())
        await f.stop()
        return out

    p1, p2, p3, ok1, ok2, ok3, res, timeouts, pubacks, inflight, connected = asyncio.run(main())
    assert p1 and p2 and p3 and len(set((p1, p2, p3))) == 3
    assert ok2 is True and ok1 is False and ok3 is False
    assert (p2, True) in res and (p1, False) in res and (p3, False) in res
    assert timeouts == 2 and pubacks == 1 and inflight == 0
    assert connected  # an unacknowledged message does not kill the link


def test_keepalive_dead_link_without_pingresp():
    async def script(fake, r, w):
        await fake.recv(r)
        await _send(w, CONNACK_OK)
        await _idle(fake, r, w)  # swallows PINGREQs, never answers

    async def main():
        f = await Fake(script).start()
        c = _client(f.port, keepalive=1)
        reasons = []
        c.on_disconnect = reasons.append
        await c.connect()
        t0 = M.ticks_ms()
        while c.is_connected() and M.ticks_diff(M.ticks_ms(), t0) < 4000:
            await asyncio.sleep(0.05)
        dt = M.ticks_diff(M.ticks_ms(), t0)
        await asyncio.sleep(0.1)
        eof = f.eof
        await f.stop()
        return dt, reasons, c.pings, eof

    dt, reasons, pings, eof = asyncio.run(main())
    assert 1400 <= dt <= 2500, dt  # 1.5 x keepalive
    assert reasons and reasons[0].startswith("keepalive")
    assert pings == 1
    # the client really closed the TCP connection (so a real broker fires the will)
    assert eof


def test_publish_when_offline_and_oversize():
    async def main():
        c = M.MQTTClient("t", "127.0.0.1", 1, tx_buf=64)
        a = await c.publish("t", b"x", qos=1)
        s = await c.subscribe("cmd", 1)
        return a, s, c

    a, s, c = asyncio.run(main())
    assert a is None and c.not_connected == 1
    assert s is None and c._subs == [(b"cmd", 1)]  # sent at the next connect


def test_qos0_payload_larger_than_tx_buffer_is_streamed():
    # an HA discovery config of an enum with its texts (~3 KB) must reach the
    # broker whole although the tx buffer is smaller; QoS 1 must still fit
    async def script(fake, r, w):
        await fake.recv(r)
        await _send(w, CONNACK_OK)
        await fake.recv(r, 4)
        await _idle(fake, r, w)

    async def main():
        f = Fake(script)
        f.fr = M.Framer(4096)
        await f.start()
        c = _client(f.port, tx_buf=256)
        rc = await c.connect()
        body = bytes(range(256)) * 12
        a = await c.publish("ha/sensor/x/config", body, retain=True)
        b = await c.publish("t", body, qos=1)  # refused: a resend needs it in the buffer
        d = await c.publish("t", b"y" * 9000)  # beyond the stated maximum
        e = await c.publish("t", b"small")
        g = await c.publish("p", (b"ab", body, b"cd"), retain=True)  # pieces of one payload
        h = await c.publish("p", (b"x",) * 9000)  # pieces beyond the maximum
        for _ in range(100):
            if len(f.got) >= 4:
                break
            await asyncio.sleep(0.01)
        res = (rc, a, b, d, e, c.too_big, c.is_connected(), list(f.got), body, g, h)
        await f.stop()
        return res

    rc, a, b, d, e, too_big, connected, got, body, g, h = asyncio.run(main())
    assert rc == 0 and a == 0 and e == 0 and g == 0 and connected
    assert b is None and d is None and h is None and too_big == 3
    assert got[3] == (0x31, b"\x00\x01pab" + body + b"cd")
    assert got[1] == (0x31, b"\x00\x12ha/sensor/x/config" + body)  # retained, QoS 0, whole payload
    assert got[2] == (0x30, b"\x00\x01tsmall")


def test_refused_connect_reported_in_words():
    # the console said "connect: OSError(111,)"; a user needs the words
    async def main():
        f = await Fake(_idle).start()
        port = f.port
        await f.stop()  # nothing listens there any more
        c = _client(port)
        return await c.connect(), c.last_error

    rc, err = asyncio.run(main())
    assert rc == M.ERR_NET
    assert err.startswith("connect: connection refused (errno "), err
    assert M.err_text(ValueError("x")) == repr(ValueError("x"))
