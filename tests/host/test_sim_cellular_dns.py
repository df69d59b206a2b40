"""Issue 17.2 in the simulator: on its cellular link the simulated board
resolves the broker's name the way a board on PPP must -- its own
non-blocking query to the peer's DNS server (lib/dns_query.py), here a DNS
server of the simulator -- never getaddrinfo, which blocks the scheduler
that feeds PPP on the board. The name is one the host cannot resolve, so a
getaddrinfo on the way would fail the connect."""
import json
import pathlib
import socket
import sys
import time

import paho.mqtt.client as mqtt
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "host_tools"))

from vegw.broker import Broker, mosquitto_binary  # noqa: E402
from vegw.simulator import Site  # noqa: E402

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="Debian mosquitto not installed (make mosquitto)")
NAME = "broker.vegw.test"  # RFC 2606: never resolves on the host


def _states(port, gw, seconds, **site_kw):
    got = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda cl, u, m: got.append((m.topic, m.payload))
    c.connect("127.0.0.1", port)
    c.subscribe("vegw/%s/#" % gw)
    c.loop_start()
    site = Site(gateway=gw, broker=(NAME, port), duration=seconds, ble=False, **site_kw)
    try:
        site.fw.wait(seconds + 60)
        out = site.fw.proc.stdout.read()
    finally:
        site.stop()
        c.loop_stop()
    return got, out, site


def test_broker_name_resolved_by_the_firmwares_own_query_on_cellular():
    try:
        socket.getaddrinfo(NAME, 1883)
        pytest.skip("this host resolves %s" % NAME)
    except OSError:
        pass
    with Broker() as b:
        got, out, site = _states(b.port, "cell1", 10, cellular={NAME: "127.0.0.1"})
    states = [json.loads(p) for t, p in got if t.endswith("/state")]
    assert states, out[-3000:]
    assert "mqtt connected to " + NAME in out
    assert NAME in site.fw.dns.queries  # asked of the "PPP peer's" server
    status = [json.loads(p) for t, p in got if t == "vegw/cell1/status"]
    assert status and status[-1]["link"] == "cell"


def test_the_same_name_without_the_peers_dns_does_not_connect():
    # control: the host's getaddrinfo cannot resolve it (what the test above
    # would hit if the firmware ever called it on the cellular link)
    with Broker() as b:
        got, out, site = _states(b.port, "cell2", 6)
    assert not [t for t, p in got if t.endswith("/state")]
    assert "mqtt connect failed" in out
