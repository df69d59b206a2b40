# MQTT 3.1.1 packet coding of firmware/lib/mqtt_async.py against exact bytes
# (arithmetic in the comments), on CPython and MicroPython.
import mqtt_codec as M
from _util import Rng


def _enc(fn, *args, size=256):
    buf = bytearray(size)
    n = fn(buf, *args)
    return bytes(buf[:n])


def test_remaining_length_varint_boundaries():
    # 7 bits per byte, least significant first, bit 7 = another byte follows
    cases = (
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),  # 0 + 1*128
        (321, b"\xc1\x02"),  # 321 = 65 + 2*128 -> 0x41|0x80, 0x02
        (16383, b"\xff\x7f"),  # 127 + 127*128
        (16384, b"\x80\x80\x01"),  # 1*128^2
        (2097151, b"\xff\xff\x7f"),
        (2097152, b"\x80\x80\x80\x01"),
        (268435455, b"\xff\xff\xff\x7f"),  # the protocol maximum
    )
    for n, exp in cases:
        buf = bytearray(4)
        end = M.enc_rl(buf, 0, n)
        assert bytes(buf[:end]) == exp, (n, bytes(buf[:end]))
        assert M.rl_size(n) == len(exp)
        assert M.dec_rl(exp, 0, len(exp)) == (n, len(exp))


def test_remaining_length_incomplete_and_malformed():
    assert M.dec_rl(b"\x80", 0, 1) == (-1, 0)  # continuation bit, no next byte
    assert M.dec_rl(b"", 0, 0) == (-1, 0)
    assert M.dec_rl(b"\xff\xff\xff\xff\x01", 0, 5)[0] == -2  # a fifth byte is illegal


def test_connect_minimal():
    # fixed header 0x10; variable header: 00 04 'MQTT', level 4, flags 0x02
    # (clean session), keepalive 60 = 00 3c; payload: 00 02 'gw'
    # remaining length = 10 + 2 + 2 = 14 = 0x0e
    got = _enc(M.enc_connect, "gw", 60, True)
    assert got == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02gw"


def test_connect_with_will_user_password():
    # flags: user 0x80 | password 0x40 | will retain 0x20 | will QoS1 0x08
    #        | will 0x04 | clean 0x02 = 0xee
    # keepalive 30 = 00 1e. rl = 10 variable header + client id 'gw' (2+2)
    #   + will topic 'v/av' (2+4) + will msg 'offline' (2+7) + user 'u' (2+1)
    #   + password 'pw' (2+2) = 10 + 4 + 6 + 9 + 3 + 4 = 36 = 0x24
    got = _enc(M.enc_connect, b"gw", 30, True, "u", "pw", "v/av", "offline", True, 1)
    exp = (b"\x10\x24\x00\x04MQTT\x04\xee\x00\x1e" + b"\x00\x02gw" + b"\x00\x04v/av"
           + b"\x00\x07offline" + b"\x00\x01u" + b"\x00\x02pw")
    assert got == exp
    assert len(exp) == 2 + 0x24


def test_connect_user_without_password_and_no_clean():
    # flags: user 0x80 only; rl = 10 + 3 ('c') + 3 ('u') = 16
    got = _enc(M.enc_connect, "c", 0, False, "u", None)
    assert got == b"\x10\x10\x00\x04MQTT\x04\x80\x00\x00\x00\x01c\x00\x01u"


def test_publish_qos0_and_qos1_retain():
    # QoS 0: 0x30, rl = 2 + 3 ('a/b') + 2 ('hi') = 7
    assert _enc(M.enc_publish, "a/b", b"hi") == b"\x30\x07\x00\x03a/bhi"
    # QoS 1 retain: 0x30 | 1<<1 | 1 = 0x33, rl = 2+3 + 2 (pid 0x1234) + 2 = 9
    assert _enc(M.enc_publish, "a/b", "hi", 1, True, 0x1234) == b"\x33\x09\x00\x03a/b\x12\x34hi"
    # DUP flag 0x08 on a QoS 1 resend: 0x3a
    assert _enc(M.enc_publish, "t", b"", 1, False, 1, True) == b"\x3a\x05\x00\x01t\x00\x01"


def test_publish_two_byte_length_and_too_big():
    payload = b"x" * 200
    # rl = 2 + 1 + 200 = 203 = 0xcb -> varint cb 01 (75 + 1*128)
    got = _enc(M.enc_publish, "t", payload, size=300)
    assert got[:5] == b"\x30\xcb\x01\x00\x01"
    assert len(got) == 3 + 203
    # a packet that does not fit the buffer is refused (0), never truncated
    assert M.enc_publish(bytearray(100), "t", payload) == 0


def test_subscribe_puback_fixed():
    # SUBSCRIBE 0x82 (reserved flags 0010), rl = 2 pid + 2+5 'cmd/#' + 1 qos = 10
    assert _enc(M.enc_subscribe, 7, "cmd/#", 1) == b"\x82\x0a\x00\x07\x00\x05cmd/#\x01"
    assert _enc(M.enc_puback, 0xBEEF) == b"\x40\x02\xbe\xef"
    # what the client sends for a ping and a clean disconnect
    assert _enc(M._enc_fixed, M.PINGREQ) == b"\xc0\x00" and _enc(M._enc_fixed, M.DISCONNECT) == b"\xe0\x00"


def test_decode_publish():
    # QoS 1 PUBLISH body: topic 'c' , pid 5, payload 'go'
    m = M.dec_publish(0x32, memoryview(b"\x00\x01c\x00\x05go"))
    assert m == (b"c", b"go", 1, 0, 5)
    assert M.dec_publish(0x31, b"\x00\x01cgo") == (b"c", b"go", 0, 1, 0)
    # malformed: topic length past the end, QoS 3, too short: None, no raise
    assert M.dec_publish(0x30, b"\x00\x09c") is None
    assert M.dec_publish(0x36, b"\x00\x01c\x00\x01") is None
    assert M.dec_publish(0x32, b"\x00\x01c\x00") is None
    assert M.dec_publish(0x30, b"\x00") is None


def _collect(fr, data):
    out = []
    ok = fr.feed(data, lambda first, body: out.append((first, bytes(body))))
    return ok, out


def test_framer_splits_any_chunking():
    stream = (b"\x20\x02\x00\x00"  # CONNACK accepted
              + b"\x40\x02\x00\x01"  # PUBACK 1
              + b"\xd0\x00"  # PINGRESP
              + b"\x30\x07\x00\x03a/bhi")  # PUBLISH
    exp = [(0x20, b"\x00\x00"), (0x40, b"\x00\x01"), (0xD0, b""), (0x30, b"\x00\x03a/bhi")]
    for step in (1, 2, 3, 5, 7, len(stream)):
        fr = M.Framer(64)
        got = []
        for i in range(0, len(stream), step):
            ok, out = _collect(fr, stream[i : i + step])
            assert ok
            got += out
        assert got == exp, step
        assert fr.n == 0


def test_framer_skips_oversized_and_counts():
    big = b"\x30\x80\x01" + b"\x00\x01t" + b"z" * 125  # rl 128 > 32-byte buffer
    after = b"\x40\x02\x00\x09"
    for step in (1, 4, 50, 200):
        fr = M.Framer(32)
        data = big + after
        got = []
        for i in range(0, len(data), step):
            ok, out = _collect(fr, data[i : i + step])
            assert ok
            got += out
        assert got == [(0x40, b"\x00\x09")], step
        assert fr.dropped == 1


def test_framer_hands_over_the_id_of_a_skipped_qos1_publish():
    # issue 23.2: a QoS 1 PUBLISH over the buffer was skipped without its
    # PUBACK; 20 of them filled the broker's in-flight window for good
    big1 = b"\x32\x82\x01" + b"\x00\x03c/d" + b"\x12\x34" + b"z" * 123  # QoS 1, pid 0x1234, rl 130
    big0 = b"\x30\x80\x01" + b"\x00\x01t" + b"z" * 125  # QoS 0: nothing owed
    after = b"\x40\x02\x00\x09"
    for step in (1, 3, 8, 50, 400):
        fr = M.Framer(32)
        skipped = []
        fr.on_skip = skipped.append
        data = big1 + big0 + big1 + after
        got = []
        for i in range(0, len(data), step):
            ok, out = _collect(fr, data[i : i + step])
            assert ok
            got += out
        assert skipped == [0x1234, 0x1234], (step, skipped)
        assert got == [(0x40, b"\x00\x09")] and fr.dropped == 3 and fr.unacked == 0, step
    # a topic longer than the buffer: the id cannot be read, counted
    fr = M.Framer(32)
    fr.on_skip = skipped.append
    ok, _ = _collect(fr, b"\x32\x80\x01\x00\x40" + b"t" * 64 + b"\x00\x07" + b"z" * 60)
    assert ok and fr.unacked == 1 and fr.dropped == 1


def test_framer_malformed_length_reports_false():
    fr = M.Framer(32)
    ok, out = _collect(fr, b"\x30\xff\xff\xff\xff\x01")
    assert not ok and out == [] and fr.malformed == 1


def test_framer_random_garbage_never_raises():
    rng = Rng(42)
    fr = M.Framer(48)
    for _ in range(300):
        data = rng.bytes(1 + rng.below(40))
        ok, out = _collect(fr, data)
        if not ok:
            fr.reset()
        for first, body in out:
            if first & 0xF0 == 0x30:
                M.dec_publish(first, body)  # must not raise either
    assert fr.n <= 48


def test_roundtrip_publish_through_framer():
    buf = bytearray(300)
    for qos in (0, 1):
        n = M.enc_publish(buf, "vegw/gw/house/state", b'{"V":12.5}', qos, True, 77)
        fr = M.Framer(128)
        ok, out = _collect(fr, buf[:n])
        assert ok and len(out) == 1
        m = M.dec_publish(out[0][0], out[0][1])
        assert m == (b"vegw/gw/house/state", b'{"V":12.5}', qos, 1, 77 if qos else 0)


