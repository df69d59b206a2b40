"""dns_query.resolve and sntp.query over real UDP on loopback, with a
responder thread: the request goes out, the loop keeps running while the
answer is awaited (issue 17.2: blocking lookups starve PPP on the board)."""
import asyncio
import pathlib
import socket
import struct
import sys
import threading

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "firmware" / "lib"))

import dns_query  # noqa: E402
import sntp  # noqa: E402


def _responder(handle):
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(5)

    def run():
        try:
            data, peer = srv.recvfrom(512)
        except OSError:
            return
        out = handle(data)
        if out:
            srv.sendto(out, peer)
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]


def _ticks_while(coro):
    async def main():
        ticks = [0]
        done = [False]

        async def probe():
            while not done[0]:
                ticks[0] += 1
                await asyncio.sleep(0.01)

        t = asyncio.ensure_future(probe())
        res = await coro
        done[0] = True
        await t
        return res, ticks[0]

    return asyncio.run(main())


def test_resolve_over_udp_without_blocking(monkeypatch):
    def handle(q):
        qid = struct.unpack("!H", q[:2])[0]
        return q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:] + \
            b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xcb\x00\x71\x09" if qid else None

    port = _responder(handle)
    monkeypatch.setattr(dns_query, "_PORT", port)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ip, ticks = _ticks_while(dns_query.resolve(s, "127.0.0.1", "mqtt.example.com"))
    s.close()
    assert ip == "203.0.113.9"
    # a server that never answers: None after the timeout, the loop ran meanwhile
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    monkeypatch.setattr(dns_query, "_PORT", dead.getsockname()[1])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ip, ticks = _ticks_while(dns_query.resolve(s, "127.0.0.1", "mqtt.example.com", timeout_ms=500))
    s.close()
    dead.close()
    assert ip is None and ticks >= 20


def test_sntp_query_over_udp():
    now = 1764940990

    def handle(q):
        assert len(q) == 48 and q[0] == 0x23
        b = bytearray(48)
        b[0] = 0x24
        b[1] = 2
        b[40:48] = struct.pack("!II", now + 2208988800, 0)
        return bytes(b)

    port = _responder(handle)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t, ticks = _ticks_while(sntp.query(s, ("127.0.0.1", port)))
    s.close()
    assert t == now


def test_mqtt_client_connects_through_the_resolver_not_getaddrinfo(broker, monkeypatch):
    # the ESP32 platform hands the client a resolver while the link is PPP
    import mqtt_async

    port = int(broker.rsplit(":", 1)[1])
    asked = []

    async def resolver(name):
        asked.append(name)
        await asyncio.sleep(0.01)
        return "127.0.0.1"

    def no_getaddrinfo(*a, **k):
        raise AssertionError("blocking getaddrinfo used")

    monkeypatch.setattr(socket, "getaddrinfo", no_getaddrinfo)

    async def go():
        c = mqtt_async.MQTTClient("t-dns", "broker.over-ppp.invalid", port, keepalive=30)
        c.resolver = resolver
        rc = await c.connect()
        ok = c.is_connected()
        await c.disconnect()
        return rc, ok, c.counters()["dns_lookups"]

    rc, ok, lookups = asyncio.run(go())
    assert rc == 0 and ok and asked == ["broker.over-ppp.invalid"] and lookups == 1
