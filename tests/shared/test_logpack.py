# The thin uplink's binary log payload (lib/logpack.py): exact bytes,
# round trip, and malformed input never raising.
import logpack


def test_pack_exact_bytes():
    recs = [(0x01020304, 16, b"\x01\x02"), (0x01020305, 17, b""), (0x01020307, 2, b"{}")]
    b = logpack.pack(recs)
    # B1 01 | seq LE | type 16, dseq 0, n 2, 01 02 | type 17, dseq 1, n 0 | type 2, dseq 2, n 2, "{}"
    assert b == bytes([0xB1, 1, 4, 3, 2, 1, 16, 0, 2, 1, 2, 17, 1, 0, 2, 2, 2, 0x7B, 0x7D])
    assert logpack.is_batch(b)
    assert not logpack.is_batch(b'{"seq":1}')


def test_round_trip_long_payload_and_seq_wrap():
    big = bytes(range(256)) * 3  # 768 B: a two-byte length varint
    recs = [(0xFFFFFFFE, 16, big), (0xFFFFFFFF, 17, b"x"), (1, 17, b"yz")]
    got = logpack.unpack(logpack.pack(recs))
    assert [(s, t, bytes(p)) for s, t, p in got] == recs


def test_malformed_never_raises():
    good = logpack.pack([(5, 16, b"abc"), (6, 17, b"de")])
    assert logpack.unpack(b"") is None
    assert logpack.unpack(b'{"seq":5}') is None
    assert logpack.unpack(good[:1] + b"\x09" + good[2:]) is None  # unknown version
    for cut in range(1, len(good)):
        got = logpack.unpack(good[:cut])
        # a cut inside a record is refused, a cut at a record boundary keeps the whole ones
        assert got is None or all(len(p) == n for (_, _, p), n in zip(got, (3, 2)))
    assert logpack.unpack(good[:6] + b"\x10\xff\xff\xff\xff\xff\xff") is None
