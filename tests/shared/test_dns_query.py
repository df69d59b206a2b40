# lib/dns_query.py: the A-record query and answer parsing (no network here; the
# resolve() round trip against a UDP server is tests/host/test_dns_query_live.py).
import dns_query as dns


def _answer(qid, name, ip, rcode=0, compress=True):
    q = dns.query(name, qid)
    head = bytearray(q[:12])
    head[2] = 0x81
    head[3] = 0x80 | rcode
    head[7] = 1  # ANCOUNT 1
    body = q[12:]
    owner = b"\xc0\x0c" if compress else body[:-4]
    rr = owner + b"\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04" + bytes(int(x) for x in ip.split("."))
    return bytes(head) + body + rr


def test_query_bytes():
    q = dns.query("mqtt.example.com", 0x1234)
    assert q[:12] == b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    assert q[12:] == b"\x04mqtt\x07example\x03com\x00\x00\x01\x00\x01"


def test_answers():
    assert dns.answer(_answer(7, "mqtt.example.com", "203.0.113.9"), 7) == "203.0.113.9"
    assert dns.answer(_answer(7, "b.example", "198.51.100.1", compress=False), 7) == "198.51.100.1"
    assert dns.answer(_answer(7, "b.example", "198.51.100.1"), 8) is None  # another query's answer
    assert dns.answer(_answer(7, "b.example", "198.51.100.1", rcode=3), 7) is None  # NXDOMAIN
    good = _answer(7, "b.example", "198.51.100.1")
    for cut in range(len(good)):
        assert dns.answer(good[:cut], 7) is None  # truncated: never raises
    assert dns.answer(None, 7) is None and dns.answer(b"\xff" * 40, 7) is None
    assert dns.is_ip("10.0.0.1") and not dns.is_ip("10.0.0") and not dns.is_ip("host.example")
