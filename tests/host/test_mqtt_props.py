"""Property tests (hypothesis, CPython) for the MQTT coders and framer of
firmware/lib/mqtt_async.py, and the loopback broker helper."""
import pathlib
import socket
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "firmware" / "lib"), str(ROOT / "host_tools")]

import mqtt_async as M  # noqa: E402
from vegw.broker import Broker, mosquitto_binary, password_line  # noqa: E402

topics = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#"),
                 min_size=1, max_size=60)


@given(st.integers(min_value=0, max_value=268435455))
def test_remaining_length_roundtrip(n):
    buf = bytearray(4)
    end = M.enc_rl(buf, 0, n)
    assert end == M.rl_size(n)
    assert M.dec_rl(buf, 0, end) == (n, end)
    # any prefix is "incomplete", never a wrong value
    for k in range(end):
        assert M.dec_rl(buf, 0, k)[0] == -1


@settings(max_examples=300)
@given(topics, st.binary(max_size=700), st.sampled_from([0, 1]), st.booleans(),
       st.integers(min_value=1, max_value=65535), st.integers(min_value=1, max_value=97))
def test_publish_roundtrip_any_chunking(topic, payload, qos, retain, pid, step):
    buf = bytearray(1024)
    n = M.enc_publish(buf, topic, payload, qos, retain, pid)
    assert n == 1 + M.rl_size(2 + len(topic.encode()) + len(payload) + 2 * qos) + 2 + len(topic.encode()) + len(payload) + 2 * qos
    fr = M.Framer(1024)
    got = []
    data = bytes(buf[:n]) * 2  # two packets back to back
    for i in range(0, len(data), step):
        assert fr.feed(data[i:i + step], lambda f, b: got.append(M.dec_publish(f, b)))
    exp = (topic.encode(), payload, qos, 1 if retain else 0, pid if qos else 0)
    assert got == [exp, exp]


@given(st.binary(max_size=300), st.integers(min_value=8, max_value=64))
def test_framer_never_raises_and_stays_bounded(data, size):
    fr = M.Framer(size)
    out = []
    ok = fr.feed(data, lambda f, b: out.append((f, bytes(b))))
    assert ok in (True, False)
    assert fr.n <= size
    for f, body in out:
        assert len(body) <= size
        if f & 0xF0 == 0x30:
            M.dec_publish(f, body)


@given(st.text(min_size=1, max_size=23), st.integers(min_value=0, max_value=65535), st.booleans(),
       st.one_of(st.none(), st.text(max_size=30)), st.one_of(st.none(), st.text(max_size=30)))
def test_connect_length_field_matches(cid, ka, clean, user, pw):
    buf = bytearray(512)
    n = M.enc_connect(buf, cid, ka, clean, user, pw if user is not None else None, "a/b", "offline", True, 1)
    rl, off = M.dec_rl(buf, 1, n)
    assert off + rl == n
    assert bytes(buf[off:off + 7]) == b"\x00\x04MQTT\x04"
    assert (buf[off + 8] << 8 | buf[off + 9]) == ka


def _connack_within(port, seconds):
    s = socket.create_connection(("127.0.0.1", port), timeout=seconds)
    try:
        buf = bytearray(64)
        n = M.enc_connect(buf, "probe", 10)
        s.sendall(bytes(buf[:n]))
        return s.recv(4)
    except socket.timeout:
        return None
    finally:
        s.close()


@pytest.mark.skipif(mosquitto_binary() is None, reason="Debian mosquitto not installed")
def test_broker_pause_resume_stop():
    b = Broker().start()
    try:
        assert _connack_within(b.port, 2) == b"\x20\x02\x00\x00"
        b.pause()
        # black hole: TCP still connects (kernel backlog), MQTT never answers
        assert _connack_within(b.port, 0.5) is None
        b.resume()
        assert _connack_within(b.port, 2) == b"\x20\x02\x00\x00"
        workdir = b._dir
    finally:
        b.stop()
    assert not pathlib.Path(workdir).exists()
    time.sleep(0.1)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", b.port), timeout=0.5).close()


def test_password_line_format():
    line = password_line("vegw", "s3cret")
    user, rest = line.split(":", 1)
    parts = rest.split("$")
    assert user == "vegw" and parts[1] == "7" and parts[2] == "101"
    import base64

    assert len(base64.b64decode(parts[3])) == 12 and len(base64.b64decode(parts[4])) == 64
