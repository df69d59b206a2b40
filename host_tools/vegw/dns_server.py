"""A minimal DNS server on loopback for the simulated cellular link: it
answers A queries for the names it is given (the broker's), NXDOMAIN for
the rest, and counts the queries. The simulated board asks it through the
firmware's own non-blocking query (lib/dns_query.py), as a board on PPP
asks the peer's DNS server."""
import socket
import struct

from .udp_server import UdpServer


def _qname(data, i):
    labels = []
    while i < len(data) and data[i]:
        n = data[i]
        labels.append(data[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels).lower(), i + 1


def answer(query, names):
    """The response to one query packet; None when it is not a query."""
    if len(query) < 12 or query[2] & 0x80:
        return None
    qid = query[:2]
    name, end = _qname(query, 12)
    question = query[12:end + 4]
    qtype = struct.unpack_from("!H", query, end)[0] if end + 2 <= len(query) else 0
    ip = names.get(name)
    if ip is None or qtype != 1:
        return qid + b"\x81\x83" + b"\x00\x01\x00\x00\x00\x00\x00\x00" + question  # NXDOMAIN
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
    return qid + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00" + question + rr


class DnsServer(UdpServer):
    def __init__(self, names):
        self.names = dict((k.lower(), v) for k, v in names.items())
        self.queries = []
        UdpServer.__init__(self)

    def respond(self, data):
        if len(data) > 12:
            self.queries.append(_qname(data, 12)[0])
        return answer(data, self.names)
