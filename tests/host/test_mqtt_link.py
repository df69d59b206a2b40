"""The shared broker option set and connect path (host_tools/vegw/mqtt_link.py)."""
import argparse
import pytest

from vegw import mqtt_link
from vegw.broker import free_port


def _args(*argv):
    p = argparse.ArgumentParser()
    mqtt_link.add_arguments(p)
    return p.parse_args(list(argv))


def test_parse_broker_forms():
    assert mqtt_link.parse_broker("h") == ("h", 1883)
    assert mqtt_link.parse_broker("h", tls=True) == ("h", 8883)
    assert mqtt_link.parse_broker("h:1884") == ("h", 1884)
    assert mqtt_link.parse_broker("[::1]:1885") == ("::1", 1885)
    assert mqtt_link.parse_broker("[::1]") == ("::1", 1883)
    for bad in ("", ":1883", "h:0", "h:70000", "h:x"):
        with pytest.raises(ValueError):
            mqtt_link.parse_broker(bad)


def test_refused_reads_as_words_not_errno():
    with pytest.raises(mqtt_link.LinkError) as e:
        mqtt_link.connect(_args("--broker", "127.0.0.1:%d" % free_port()))
    assert "connection refused" in str(e.value)
    assert "OSError" not in str(e.value) and "111" not in str(e.value)


def test_missing_ca_file_is_one_line():
    with pytest.raises(mqtt_link.LinkError) as e:
        mqtt_link.connect(_args("--broker", "127.0.0.1:1", "--ca", "/nonexistent/ca.pem"))
    assert "/nonexistent/ca.pem" in str(e.value)


def test_connects_and_subscribes_on_connect(broker):
    got = []
    c = mqtt_link.connect(_args("--broker", broker), "t",
                          on_connect=lambda cl: cl.subscribe("t/x", 1),
                          on_message=lambda cl, u, m: got.append(m.payload))
    try:
        import time
        time.sleep(0.2)
        c.publish("t/x", b"hi", qos=1).wait_for_publish(5)
        end = time.monotonic() + 5
        while not got and time.monotonic() < end:
            time.sleep(0.02)
        assert got == [b"hi"]
    finally:
        mqtt_link.close(c)
