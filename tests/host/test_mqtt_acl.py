"""docs/mosquitto-acl.conf against a real Mosquitto (issue 22): a gateway's
credentials reach its own topics only; the operator reaches every gateway."""
import pathlib
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from vegw.broker import Broker, mosquitto_binary

ROOT = pathlib.Path(__file__).resolve().parents[2]
ACL = ROOT / "docs" / "mosquitto-acl.conf"

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="Debian mosquitto not installed")


def _client(port, user, got=None, subs=()):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="acl-" + user)
    c.username_pw_set(user, user + "-secret")
    ready = threading.Event()

    def on_connect(cl, u, f, rc, p=None):
        for t in subs:
            cl.subscribe(t, 1)
        ready.set()

    c.on_connect = on_connect
    if got is not None:
        c.on_message = lambda cl, u, m: got.append(m.topic)
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(5)
    return c


def test_a_gateway_reaches_only_its_own_topics():
    users = dict((u, u + "-secret") for u in ("operator", "gw1", "gw2"))
    with Broker(users=users, acl_file=str(ACL)) as b:
        seen_op, seen_gw2 = [], []
        op = _client(b.port, "operator", seen_op, ["vegw/#", "homeassistant/#"])
        gw2 = _client(b.port, "gw2", seen_gw2, ["vegw/gw2/cmd", "vegw/gw2/ota/#", "vegw/gw1/cmd"])
        gw1 = _client(b.port, "gw1")
        time.sleep(0.3)
        for t in ("vegw/gw1/status", "vegw/gw1/house/state", "homeassistant/sensor/vegw_gw1_x_V/config",
                  # not its own: dropped by the broker
                  "vegw/gw2/cmd", "vegw/gw2/ota/manifest", "vegw/gw2/status", "vegw/gw2/house/state"):
            gw1.publish(t, b"x", qos=1).wait_for_publish(5)
        op.publish("vegw/gw2/cmd", b"{}", qos=1).wait_for_publish(5)
        op.publish("vegw/gw1/cmd", b"{}", qos=1).wait_for_publish(5)
        time.sleep(0.5)
        for c in (op, gw1, gw2):
            c.loop_stop()
            c.disconnect()
    assert sorted(set(seen_op)) == sorted(["vegw/gw1/status", "vegw/gw1/house/state",
                                           "homeassistant/sensor/vegw_gw1_x_V/config",
                                           "vegw/gw2/cmd", "vegw/gw1/cmd"]), seen_op
    # gw2 got the operator's command, nothing from gw1, and cannot read gw1's commands
    assert seen_gw2 == ["vegw/gw2/cmd"], seen_gw2
