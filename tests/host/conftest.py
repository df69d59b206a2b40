"""Fixtures shared by the host tests."""
import pytest

from vegw.broker import Broker, mosquitto_binary


@pytest.fixture(scope="module")
def broker():
    """A throw-away Mosquitto on a free loopback port: "127.0.0.1:PORT"."""
    if mosquitto_binary() is None:
        pytest.skip("Debian mosquitto not installed (make mosquitto)")
    with Broker() as b:
        yield "127.0.0.1:%d" % b.port
