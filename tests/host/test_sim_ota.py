"""`vegw ota` against the simulated gateway: the real firmware receives a
changed module over MQTT, checks it, reboots into it (the simulator boots it
again on the same filesystem) and reports healthy."""
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "host_tools"))

from vegw.broker import Broker, mosquitto_binary  # noqa: E402
from vegw.simulator import Site  # noqa: E402

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="Debian mosquitto not installed (make mosquitto)")
VEGW = str(pathlib.Path(sys.executable).with_name("vegw"))


def test_ota_update_reboots_into_new_module_and_reports_healthy(tmp_path):
    fw = tmp_path / "firmware"
    shutil.copytree(str(ROOT / "firmware"), str(fw))
    src = fw / "lib" / "reporter.py"
    src.write_text(src.read_text() + "\nOTA_MARK = 1  # changed by the OTA test\n")
    import ota_rx as ota

    fleet = "a5" * 32
    with Broker() as b:
        site = Site(gateway="ota1", broker=("127.0.0.1", b.port), duration=45, ble=False, healthy_after=3,
                    ota_key=ota.derive_key(bytes.fromhex(fleet), "ota1").hex())
        result = {}
        waiter = threading.Thread(target=lambda: result.setdefault("rc", site.fw.wait(120)))
        waiter.start()  # boots the firmware again when it resets, like a board
        try:
            time.sleep(4)
            r = subprocess.run([VEGW, "ota", "--broker", "127.0.0.1:%d" % b.port, "--gateway", "ota1",
                                "--firmware", str(fw), "--build-dir", str(tmp_path / "build"),
                                "--files", "lib/reporter.py", "--timeout", "90", "--fleet-key", fleet],
                               capture_output=True, text=True, timeout=150)
            waiter.join(120)
            rc = result.get("rc")
        finally:
            site.stop()
    boots = "\n---\n".join(site.fw.output)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:] + boots[-3000:]
    assert rc == 0
    assert site.fw.resets == 1  # rebooted once, into the update
    on_device = pathlib.Path(site.fw.fs) / "lib" / "reporter.mpy"
    built = list((tmp_path / "build").rglob("reporter.mpy"))
    assert built and hashlib.sha256(on_device.read_bytes()).digest() == hashlib.sha256(built[0].read_bytes()).digest()
    assert not (pathlib.Path(site.fw.fs) / "lib" / "reporter.mpy.bak").exists()  # healthy: backup dropped


def _run_ota(b, fw, tmp_path, gateway, files, *extra):
    return subprocess.run([VEGW, "ota", "--broker", "127.0.0.1:%d" % b.port, "--gateway", gateway,
                           "--firmware", str(fw), "--build-dir", str(tmp_path / "build"),
                           "--files"] + list(files) + ["--timeout", "90"] + list(extra),
                          capture_output=True, text=True, timeout=150)


def test_updates_without_proof_are_refused_and_the_gateway_keeps_publishing(tmp_path):
    # issue 22: unsigned, signed for another gateway, another fleet's key
    import ota_rx as ota
    import paho.mqtt.client as mqtt

    fw = tmp_path / "firmware"
    shutil.copytree(str(ROOT / "firmware"), str(fw))
    src = fw / "lib" / "reporter.py"
    src.write_text(src.read_text() + "\nEVIL = 1\n")
    fleet = "a5" * 32
    statuses = []
    with Broker() as b:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.on_message = lambda cl, u, m: statuses.append(json.loads(m.payload))
        c.connect("127.0.0.1", b.port)
        c.subscribe("vegw/ota2/status")
        c.loop_start()
        site = Site(gateway="ota2", broker=("127.0.0.1", b.port), duration=30, ble=False,
                    ota_key=ota.derive_key(bytes.fromhex(fleet), "ota2").hex())
        try:
            time.sleep(4)
            r1 = _run_ota(b, fw, tmp_path, "ota2", ["lib/reporter.py"])
            r2 = _run_ota(b, fw, tmp_path, "ota2", ["lib/reporter.py"], "--key",
                          ota.derive_key(bytes.fromhex(fleet), "other").hex())
            r3 = _run_ota(b, fw, tmp_path, "ota2", ["lib/reporter.py"], "--fleet-key", "77" * 32)
            n = len(statuses)
            site.fw.wait(60)
        finally:
            site.stop()
            c.loop_stop()
    assert r1.returncode == 5 and "unsigned" in r1.stderr, r1.stderr
    assert r2.returncode == 5 and "signature" in r2.stderr, r2.stderr
    assert r3.returncode == 5 and "signature" in r3.stderr, r3.stderr
    assert site.fw.resets == 0
    assert not (pathlib.Path(site.fw.fs) / "lib" / "reporter.mpy").exists()  # nothing installed
    assert len(statuses) > n and statuses[-1]["ota"] == "signed"  # still publishing


def test_broken_app_from_ota_rolls_back_by_itself(tmp_path):
    # issue 23.8: an app.py that raises at import left the board at the REPL
    # before the watchdog existed, so boot counting never went on
    import ota_rx as ota

    fw = tmp_path / "firmware"
    shutil.copytree(str(ROOT / "firmware"), str(fw))
    app = fw / "app.py"
    app.write_text('raise RuntimeError("broken by the update")\n' + app.read_text())
    fleet = "a5" * 32
    with Broker() as b:
        site = Site(gateway="ota3", broker=("127.0.0.1", b.port), duration=25, ble=False, healthy_after=3,
                    ota_key=ota.derive_key(bytes.fromhex(fleet), "ota3").hex())
        result = {}
        # boots of a loaded machine are slow: room for the failing boots, the
        # rollback and the old firmware's run to its clean stop
        waiter = threading.Thread(target=lambda: result.setdefault("rc", site.fw.wait(300)))
        waiter.start()
        try:
            time.sleep(4)
            r = _run_ota(b, fw, tmp_path, "ota3", ["app.py"], "--fleet-key", fleet)
            waiter.join(300)
        finally:
            site.stop()
    boots = "\n---\n".join(site.fw.output)
    assert "failed to start" in boots and "broken by the update" in boots, boots[-3000:]
    assert site.fw.resets >= 3  # into the update, and again until the journal rolled back
    # the rollback is reported when the old firmware is back (exit 3), or
    # after --timeout on a loaded machine (exit 4): never "healthy"
    assert r.returncode in (3, 4), r.stdout + r.stderr
    on_device = pathlib.Path(site.fw.fs) / "app.mpy"
    assert not on_device.exists() or b"broken by the update" not in on_device.read_bytes()
    assert result.get("rc") == 0  # the old firmware ran to its clean stop
