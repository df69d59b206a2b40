# SNTP client (RFC 4330), without blocking the scheduler: the request goes
# out on a non-blocking UDP socket and the answer is polled with asyncio
# sleeps (ntptime.settime() blocks the whole board for up to its timeout).
# After every power-on an ESP32's clock starts at 2000-01-01: until it is set
# every timestamp is wrong and TLS with a CA fails (mbedTLS checks the
# certificate's dates against it).
import struct

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_NTP_TO_UNIX = const(2208988800)  # seconds from 1900-01-01 to 1970-01-01
_MIN_UNIX = const(1704067200)  # 2024-01-01: an answer before it is wrong
_PORT = const(123)


def request():
    """A 48-byte SNTP client request (LI 0, version 4, mode 3)."""
    b = bytearray(48)
    b[0] = 0x23
    return b


def parse(resp):
    """Unix seconds (float) from a server answer, or None when it is not a
    usable one (short, not a server, unsynchronised, kiss-o'-death, zero or
    implausible time). Never raises."""
    try:
        if resp is None or len(resp) < 48:
            return None
        li_vn_mode = resp[0]
        if li_vn_mode & 7 not in (4, 5):  # server or broadcast
            return None
        if li_vn_mode >> 6 == 3:  # leap indicator 3: clock not synchronised
            return None
        stratum = resp[1]
        if stratum == 0 or stratum > 15:  # kiss-o'-death or unsynchronised
            return None
        secs, frac = struct.unpack("!II", bytes(resp[40:48]))
        if secs == 0:
            return None
        t = secs - _NTP_TO_UNIX + frac / 4294967296
        return t if t >= _MIN_UNIX else None
    except Exception:  # noqa: BLE001 - outside input
        return None


async def query(sock, addr, timeout_ms=3000, sleep=None):
    """Send a request on a non-blocking UDP socket to addr (ip, port) and
    wait up to timeout_ms for the answer, yielding to the loop meanwhile.
    Returns unix seconds or None."""
    import asyncio

    sleep = sleep or asyncio.sleep
    sock.setblocking(False)
    try:
        sock.sendto(request(), addr)
    except OSError:
        return None
    waited = 0
    while waited < timeout_ms:
        try:
            data = sock.recv(64)
        except OSError:  # EAGAIN: nothing yet
            data = None
        if data:
            t = parse(data)
            if t is not None:
                return t
        await sleep(0.05)
        waited += 50
    return None
