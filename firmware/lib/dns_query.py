# A DNS A-record lookup that does not block the scheduler. On an ESP32 over
# PPP, socket.getaddrinfo() is a blocking lwIP call, and since v1.26 PPP
# input is processed only by PPP.poll from the scheduler, which cannot run
# while the call blocks: broker names never resolved over cellular
# (MicroPython issue #18737, OSError -202). This asks the link's DNS server
# over a non-blocking UDP socket instead and polls with asyncio sleeps.
import struct

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_PORT = const(53)
_MAX_NAME = const(253)


def query(name, qid):
    """A standard recursive query for the A record of `name`."""
    out = bytearray(struct.pack("!HHHHHH", qid & 0xFFFF, 0x0100, 1, 0, 0, 0))
    for label in name.rstrip(".").split("."):
        b = label.encode()
        if not 0 < len(b) < 64:
            raise ValueError("bad DNS name")
        out.append(len(b))
        out.extend(b)
    out.extend(b"\x00\x00\x01\x00\x01")  # root, QTYPE A, QCLASS IN
    return bytes(out)


def _skip_name(buf, i):
    # past a (possibly compressed) name; -1 when it runs off the buffer
    n = len(buf)
    while i < n:
        c = buf[i]
        if c == 0:
            return i + 1
        if c & 0xC0 == 0xC0:
            return i + 2 if i + 1 < n else -1
        i += 1 + c
    return -1


def answer(resp, qid):
    """The first IPv4 address of the answer to query qid, as "a.b.c.d", or
    None (another id, an error code, no A record, a truncated packet).
    Never raises."""
    try:
        if resp is None or len(resp) < 12:
            return None
        rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", bytes(resp[:12]))
        if rid != qid & 0xFFFF or not flags & 0x8000 or flags & 0x000F:
            return None  # not our answer, not an answer, or an error (NXDOMAIN ...)
        i = 12
        for _ in range(qd):
            i = _skip_name(resp, i)
            if i < 0:
                return None
            i += 4
        for _ in range(an):
            i = _skip_name(resp, i)
            if i < 0 or i + 10 > len(resp):
                return None
            rtype, rclass, _, rdlen = struct.unpack("!HHIH", bytes(resp[i:i + 10]))
            i += 10
            if rtype == 1 and rclass == 1 and rdlen == 4 and i + 4 <= len(resp):
                return "%d.%d.%d.%d" % (resp[i], resp[i + 1], resp[i + 2], resp[i + 3])
            i += rdlen
        return None
    except Exception:  # noqa: BLE001 - outside input
        return None


def is_ip(name):
    parts = name.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or int(p) > 255:
            return False
    return True


async def resolve(sock, server, name, timeout_ms=5000, qid=0x5647, sleep=None, port=None):
    """IPv4 address of `name` asked of DNS server `server` (an IP; port 53
    unless given) on a UDP socket, without blocking; None on timeout or a
    bad answer."""
    import asyncio

    if is_ip(name):
        return name
    if not name or len(name) > _MAX_NAME:
        return None
    sleep = sleep or asyncio.sleep
    sock.setblocking(False)
    q = query(name, qid)
    try:
        try:
            sock.sendto(q, (server, port or _PORT))
        except TypeError:
            # the unix port takes a raw sockaddr; for an IP literal
            # getaddrinfo only converts it (no lookup, nothing blocks)
            import socket

            sock.sendto(q, socket.getaddrinfo(server, port or _PORT)[0][-1])
    except (OSError, ValueError):
        return None
    waited = 0
    while waited < timeout_ms:
        try:
            data = sock.recv(512)
        except OSError:  # nothing yet
            data = None
        if data:
            ip = answer(data, qid)
            if ip is not None:
                return ip
        await sleep(0.05)
        waited += 50
    return None
