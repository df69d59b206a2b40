"""A minimal SNTP server on loopback for the simulated gateway: the host's
clock as a stratum-2 server (RFC 4330 answer to a mode-3 request). The
simulated board starts at 2000-01-01 and sets its clock from this, through
the firmware's own SNTP client (lib/sntp.py), as a board does over Wi-Fi."""
import struct
import time

from .udp_server import UdpServer

NTP_TO_UNIX = 2208988800


def answer(request, now=None):
    """The 48-byte server answer to a client request, or None if it is not one."""
    if len(request) < 48 or request[0] & 7 != 3:
        return None
    now = time.time() if now is None else now
    secs = int(now) + NTP_TO_UNIX
    frac = int((now % 1) * 2**32) & 0xFFFFFFFF
    b = bytearray(48)
    b[0] = (0 << 6) | (4 << 3) | 4  # LI 0, version 4, mode 4 (server)
    b[1] = 2  # stratum
    b[24:32] = request[40:48]  # originate = the client's transmit time
    struct.pack_into("!IIII", b, 32, secs, frac, secs, frac)  # receive, transmit
    return bytes(b)


class SntpServer(UdpServer):
    """Answers on 127.0.0.1:port in a daemon thread; stop() closes it.
    answering=False: silent (a network that blocks NTP)."""

    def __init__(self, answering=True):
        self.answering = answering
        self.queries = 0
        UdpServer.__init__(self)

    def respond(self, data):
        self.queries += 1
        return answer(data) if self.answering else None
