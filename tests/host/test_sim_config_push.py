"""`vegw config push` against the simulated gateway and a real Mosquitto
(issue 19): a good config is applied, the gateway reboots with it and keeps
it once healthy; a config the schema refuses is refused with its path
(here before anything is sent, and on the gateway when it gets one
anyway); a config that loses the broker is rolled back by the gateway
itself, which comes back online with the previous one."""
import json
import pathlib
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "host_tools"))
sys.path.insert(0, str(ROOT / "firmware" / "lib"))

from vegw.broker import Broker, free_port, mosquitto_binary  # noqa: E402
from vegw.simulator import Site  # noqa: E402

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="Debian mosquitto not installed (make mosquitto)")
VEGW = str(pathlib.Path(sys.executable).with_name("vegw"))
FLEET = "c3" * 32


def _site(b, gw, **kw):
    import proof

    return Site(gateway=gw, broker=("127.0.0.1", b.port), ble=False, healthy_after=3,
                ota_key=proof.derive_key(bytes.fromhex(FLEET), gw).hex(), **kw)


def _push(b, gw, path, timeout=90):
    return subprocess.run([VEGW, "config", "push", "--broker", "127.0.0.1:%d" % b.port, "--gateway", gw,
                           "--fleet-key", FLEET, "--timeout", str(timeout), str(path)],
                          capture_output=True, text=True, timeout=timeout + 60)


def _pushed_config(site, path, **mqtt_changes):
    cfg = json.loads(json.dumps(site.config))
    cfg["mqtt"].update(mqtt_changes)
    path.write_text(json.dumps(cfg, indent=1))
    return cfg


def test_good_config_applied_and_kept(tmp_path):
    with Broker() as b:
        site = _site(b, "push1", duration=60)
        waiter = threading.Thread(target=site.fw.wait, args=(150,))
        waiter.start()
        try:
            time.sleep(4)
            _pushed_config(site, tmp_path / "new.json", status_interval=20)
            r = _push(b, "push1", tmp_path / "new.json")
        finally:
            site.stop()
            waiter.join(10)
    boots = "\n---\n".join(site.fw.output)
    assert r.returncode == 0, r.stdout + r.stderr + boots[-3000:]
    assert "applied" in r.stdout and "healthy with the new config" in r.stdout
    on_device = json.loads((pathlib.Path(site.fw.fs) / "config.json").read_text())
    assert on_device["mqtt"]["status_interval"] == 20
    assert not (pathlib.Path(site.fw.fs) / "config.json.bak").exists()
    assert site.fw.resets == 1  # rebooted once, into the new config


def test_schema_error_refused_with_its_path(tmp_path):
    from vegw.config_push import messages
    import proof

    replies = []
    with Broker() as b:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.on_message = lambda cl, u, m: replies.append(json.loads(m.payload))
        c.connect("127.0.0.1", b.port)
        c.subscribe("vegw/push2/config/status", 1)
        c.loop_start()
        site = _site(b, "push2", duration=25)
        try:
            time.sleep(4)
            bad = _pushed_config(site, tmp_path / "bad.json", keepalive=5000)  # the schema allows up to 3600
            r = _push(b, "push2", tmp_path / "bad.json")
            # refused here, exactly as `vegw config validate` says it
            v = subprocess.run([VEGW, "config", "validate", str(tmp_path / "bad.json")], capture_output=True, text=True)
            # and by the gateway itself when it gets one anyway (an older laptop, a script)
            key = proof.derive_key(bytes.fromhex(FLEET), "push2")
            parts, apply = messages(json.dumps(bad).encode(), "push2", key)
            for m in parts + [apply]:
                c.publish("vegw/push2/cmd", json.dumps(m), qos=1).wait_for_publish(5)
            end = time.time() + 20
            while time.time() < end and not any(x.get("state") == "refused" for x in replies):
                time.sleep(0.2)
            site.fw.wait(60)
        finally:
            site.stop()
            c.loop_stop()
    assert r.returncode == 2 and "mqtt.keepalive" in r.stderr and "nothing sent" in r.stderr, r.stderr
    assert v.returncode == 2 and "mqtt.keepalive" in v.stderr
    refused = [x for x in replies if x.get("state") == "refused"]
    assert refused and refused[0]["path"] == "mqtt.keepalive" and refused[0]["id"] == apply["id"], replies
    assert "password" not in json.dumps(replies)
    on_device = json.loads((pathlib.Path(site.fw.fs) / "config.json").read_text())
    assert on_device["mqtt"].get("keepalive") != 5000 and site.fw.resets == 0


def test_config_that_loses_the_broker_is_rolled_back_by_the_gateway(tmp_path):
    statuses = []
    with Broker() as b:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.on_message = lambda cl, u, m: statuses.append((m.topic, m.payload))
        c.connect("127.0.0.1", b.port)
        c.subscribe("vegw/push3/#")
        c.loop_start()
        site = _site(b, "push3", duration=90, config_health_s=8)
        waiter = threading.Thread(target=site.fw.wait, args=(200,))
        waiter.start()
        try:
            time.sleep(4)
            _pushed_config(site, tmp_path / "dead.json", port=free_port())  # nothing listens there
            r = _push(b, "push3", tmp_path / "dead.json", timeout=100)
            online = [p for t, p in list(statuses) if t == "vegw/push3/availability"]
        finally:
            site.stop()
            waiter.join(10)
            c.loop_stop()
    boots = "\n---\n".join(site.fw.output)
    assert r.returncode == 3, r.stdout + r.stderr + boots[-3000:]
    assert "rolled back" in r.stderr and "not healthy within 8 s" in r.stderr
    on_device = json.loads((pathlib.Path(site.fw.fs) / "config.json").read_text())
    assert on_device["mqtt"]["port"] == b.port  # the previous config is back
    assert online[-1] == b"online"
    assert site.fw.resets >= 2  # into the pushed config, and back
