"""`vegw ota` against the simulated gateway: the real firmware receives a
changed module over MQTT, checks it, reboots into it (the simulator boots it
again on the same filesystem) and reports healthy."""
import hashlib
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
    with Broker() as b:
        site = Site(gateway="ota1", broker=("127.0.0.1", b.port), duration=45, ble=False, healthy_after=3)
        result = {}
        waiter = threading.Thread(target=lambda: result.setdefault("rc", site.fw.wait(120)))
        waiter.start()  # boots the firmware again when it resets, like a board
        try:
            time.sleep(4)
            r = subprocess.run([VEGW, "ota", "--broker", "127.0.0.1:%d" % b.port, "--gateway", "ota1",
                                "--firmware", str(fw), "--build-dir", str(tmp_path / "build"),
                                "--files", "lib/reporter.py", "--timeout", "60"],
                               capture_output=True, text=True, timeout=90)
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
