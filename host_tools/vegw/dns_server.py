"""A minimal DNS server on loopback for the simulated cellular link: it
answers A queries for the names it is given (the broker's), NXDOMAIN for
the rest, and counts the queries. The simulated board asks it through the
firmware's own non-blocking query (lib/dns_query.py), as a board on PPP
asks the peer's DNS server."""
import socket
import struct
import threading


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


class DnsServer:
    def __init__(self, names):
        self.names = dict((k.lower(), v) for k, v in names.items())
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                continue
            if len(data) > 12:
                self.queries.append(_qname(data, 12)[0])
            out = answer(data, self.names)
            if out:
                try:
                    self.sock.sendto(out, peer)
                except OSError:
                    pass

    def stop(self):
        self._stop = True
        self.sock.close()
