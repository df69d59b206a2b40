"""`vegw sim` contract: a raw capture replayed as device NAME, state in the
units of `vegw decode`, clean stop after --duration (offline, exit 0)."""
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "host"))
from test_gateway_e2e import Sub  # noqa: E402
from vegw.broker import Broker, mosquitto_binary  # noqa: E402

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="Debian mosquitto not installed (make mosquitto)")
VEGW = str(pathlib.Path(sys.executable).with_name("vegw"))


def test_replayed_capture_published_as_decoded_and_clean_stop(tmp_path):
    cap = tmp_path / "mppt.bin"
    subprocess.run([VEGW, "gen", "mppt", "--seconds", "20", "-o", str(cap)], check=True)
    decoded = [json.loads(x) for x in subprocess.run([VEGW, "decode", str(cap)], capture_output=True,
                                                      text=True).stdout.splitlines()]
    with Broker() as b:
        sub = Sub(b.port, ("vegw/#",))
        r = subprocess.run([VEGW, "sim", "--broker", "127.0.0.1:%d" % b.port, "--gateway", "Site-7",
                            "--vedirect", "pv=%s" % cap, "--speed", "4", "--duration", "8", "--quiet"],
                           capture_output=True, text=True, timeout=120)
        time.sleep(0.5)
        sub.stop()
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    states = sub.json("vegw/Site-7/pv/state")
    assert states
    seen = {}
    for d in decoded:
        for k, v in d.items():
            seen.setdefault(k, []).append(v)
    for st in states:
        for k, v in st.items():
            if k in seen:  # decoded fields: values the capture really carried
                assert v in seen[k], (k, v)
    assert states[-1]["PID"] == decoded[0]["PID"] and states[-1]["SER#"] == decoded[0]["SER#"]
    av = [m[1] for m in sub.topic("vegw/Site-7/availability")]
    assert av[0] == b"online" and av[-1] == b"offline"


def _private_tmp(tmp_path):
    # `vegw sim` gets a temporary folder of its own (TMPDIR): what it leaves
    # there is its own, whatever the tests running beside it do in /tmp
    d = tmp_path / "tmp"
    d.mkdir()
    return d, dict(os.environ, TMPDIR=str(d))


def _left(d):
    """Files or folders a `vegw sim` left in its TMPDIR, and mosquittos still
    running from there."""
    files = sorted(p.name for p in d.iterdir())
    mosq = subprocess.run(["pgrep", "-f", "mosquitto.*" + str(d)], capture_output=True, text=True).stdout.split()
    return files, mosq


def test_config_file_pointed_at_local_broker_with_ble_adverts_and_gateway(tmp_path):
    # the starter config (TLS on, CHANGE-ME credentials, a BLE device) must
    # publish to the simulator's plain broker; --gateway wins over the config
    cfg_path = tmp_path / "site.json"
    subprocess.run([VEGW, "config", "new", str(cfg_path)], check=True, capture_output=True)
    cfg = json.loads(cfg_path.read_text())
    assert cfg["mqtt"]["tls"] is True
    priv, env = _private_tmp(tmp_path)
    with Broker() as b:
        sub = Sub(b.port, ("vegw/#",))
        r = subprocess.run([VEGW, "sim", "--broker", "127.0.0.1:%d" % b.port, "--config", str(cfg_path),
                            "--gateway", "cabin-3", "--speed", "2", "--duration", "6", "--quiet"],
                           capture_output=True, text=True, timeout=120, env=env)
        time.sleep(0.5)
        sub.stop()
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "TLS off" in r.stdout and "127.0.0.1:%d" % b.port in r.stdout
    assert sub.json("vegw/cabin-3/house/state")  # VE.Direct device of the config
    shunt = sub.json("vegw/cabin-3/shunt/state")  # BLE device of the config: simulated adverts
    assert shunt and shunt[-1]["SOC"] == 87.5
    assert not sub.topic("vegw/site-001/availability")  # the config's id was overridden
    assert _left(priv) == ([], [])  # nothing left in its temporary folder


def test_failures_at_start_leave_nothing_behind(tmp_path):
    priv, env = _private_tmp(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    # fails after it started its own mosquitto: that one is stopped again
    r = subprocess.run([VEGW, "sim", "--config", str(bad)], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr
    assert "started mosquitto" in r.stdout
    # an unreachable broker is named in words
    from vegw.broker import free_port

    r = subprocess.run([VEGW, "sim", "--broker", "127.0.0.1:%d" % free_port(), "--duration", "1"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "connection refused" in r.stderr, r.stderr
    time.sleep(0.3)
    assert _left(priv) == ([], [])


def test_flash_image_removed_unless_kept(tmp_path):
    priv, env = _private_tmp(tmp_path)
    with Broker() as b:
        r = subprocess.run([VEGW, "sim", "--broker", "127.0.0.1:%d" % b.port, "--duration", "3", "--quiet",
                            "--keep-flash"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    line = [ln for ln in r.stdout.splitlines() if "flash image kept:" in ln]
    assert line, r.stdout
    path = line[0].split("flash image kept: ")[1].split(" ")[0]
    try:
        assert os.path.getsize(path) > 0
        logs = subprocess.run([VEGW, "logs", "--from-file", path], capture_output=True, text=True, timeout=60)
        assert logs.returncode == 0, logs.stderr
    finally:
        os.unlink(path)
    assert _left(priv) == ([], [])
