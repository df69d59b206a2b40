"""`vegw sim` contract: a raw capture replayed as device NAME, state in the
units of `vegw decode`, clean stop after --duration (offline, exit 0)."""
import json
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
