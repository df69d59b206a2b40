"""`vegw modem probe` / `vegw modem signal` as a user runs them: the real CLI in
a subprocess against `python -m vegw.modem_sim` over loopback TCP."""
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))


class Sim:
    def __init__(self, scenario, model="sim7600", tmp=None, pin_tries=0, stored_apn=""):
        self.log = str(tmp / ("cmds-%s-%s-%s.log" % (scenario, model, stored_apn))) if tmp else None
        cmd = [sys.executable, "-m", "vegw.modem_sim", "--port", "0", "--scenario", scenario, "--model", model,
               "--pin-tries", str(pin_tries), "--stored-apn", stored_apn]
        if self.log:
            cmd += ["--log", self.log]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=ENV, cwd=str(ROOT))
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def commands(self):
        with open(self.log) as f:
            return f.read().split()

    def close(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def sim(tmp_path):
    made = []

    def start(scenario, model="sim7600", pin_tries=0, stored_apn=""):
        s = Sim(scenario, model, tmp_path, pin_tries, stored_apn)
        made.append(s)
        return s

    yield start
    for s in made:
        s.close()


def vegw(*args, timeout=90):
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "vegw.cli", "modem"] + list(args), capture_output=True, text=True,
                       env=ENV, cwd=str(ROOT), timeout=timeout)
    took = time.monotonic() - t0
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, p.stdout, p.stderr, took


def probe(port, *extra, timeout="20"):
    rc, out, err, took = vegw("probe", "--modem", "tcp:127.0.0.1:%d" % port, "--timeout", timeout, *extra)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out + err
    res = json.loads(lines[0])
    for key in ("model", "sim", "registered", "operator", "tech", "rssi_dbm", "data"):
        assert key in res, key
    return rc, res, took


def test_happy_path(sim):
    s = sim("happy")
    rc, res, _ = probe(s.port)
    assert rc == 0
    assert res["sim"] == "ready" and res["registered"] is True
    assert res["operator"] == "One NZ" and res["tech"] == "LTE" and res["rssi_dbm"] == -73
    assert res["data"] is None and res["model"] == "sim7600"


def test_happy_path_with_apn_connects(sim):
    s = sim("happy")
    rc, res, _ = probe(s.port, "--apn", "internet")
    assert rc == 0 and res["data"] == "connect"
    assert 'AT+CGDCONT=1,"IP","internet"' in s.commands()


def test_new_apn_reattaches_once_and_a_stored_one_is_kept(sim):
    # issue 17.6: after AT+CGDCONT the modem must re-attach (the bearer keeps
    # the APN of its last attach), but only when the APN really changed
    s = sim("happy", stored_apn="")
    rc, res, _ = probe(s.port, "--apn", "internet")
    assert rc == 0 and res["data"] == "connect"
    cmds = s.commands()
    i = cmds.index('AT+CGDCONT=1,"IP","internet"')
    assert cmds[i + 1:i + 3] == ["AT+CGATT=0", "AT+CGATT=1"] and cmds.index("ATD*99#") > i + 2
    s2 = sim("happy", stored_apn="internet")
    rc, res, _ = probe(s2.port, "--apn", "internet")
    assert rc == 0 and res["data"] == "connect"
    assert "AT+CGDCONT?" in s2.commands() and not [c for c in s2.commands() if c.startswith(("AT+CGATT", "AT+CGDCONT="))]


@pytest.mark.parametrize("model,tech", [("sim7080", "LTE-M"), ("a7670", "LTE")])
def test_other_models_detected(sim, model, tech):
    s = sim("happy", model)
    rc, res, _ = probe(s.port, "--apn", "internet")
    assert rc == 0 and res["model"] == model and res["tech"] == tech and res["data"] == "connect"


def test_no_sim(sim):
    s = sim("no_sim")
    rc, res, _ = probe(s.port, "--pin", "1234", "--apn", "internet")
    assert rc == 1 and res["sim"] == "absent" and res["registered"] is False and res["data"] is None
    assert not any(c.startswith("AT+CPIN=") for c in s.commands())


def test_pin_right(sim):
    s = sim("pin")
    rc, res, _ = probe(s.port, "--pin", "1234")
    assert rc == 0 and res["sim"] == "ready"
    assert [c for c in s.commands() if c.startswith("AT+CPIN=")] == ['AT+CPIN="1234"']


def test_pin_required_without_pin(sim):
    s = sim("pin")
    rc, res, _ = probe(s.port)
    assert rc == 1 and res["sim"] == "pin_required"


def test_wrong_pin_sent_once_then_refused(sim):
    s = sim("wrong_pin")
    rc, res, _ = probe(s.port, "--pin", "1111")
    assert rc == 1 and res["sim"] == "pin_wrong"
    assert [c for c in s.commands() if c.startswith("AT+CPIN=")] == ['AT+CPIN="1111"']
    # a second run (a new "boot") sees a try already used and sends nothing
    rc, res, _ = probe(s.port, "--pin", "1111")
    assert rc == 1 and res["sim"] == "pin_wrong" and res["pin_tries"] == 2
    assert len([c for c in s.commands() if c.startswith("AT+CPIN=")]) == 1


def test_puk_required(sim):
    s = sim("puk")
    rc, res, _ = probe(s.port, "--pin", "1234")
    assert rc == 1 and res["sim"] == "puk_required"
    assert not any(c.startswith("AT+CPIN=") for c in s.commands())


def test_no_registration_reports_signal_within_timeout(sim):
    s = sim("no_reg")
    rc, res, took = probe(s.port, timeout="4")
    assert rc == 1 and res["registered"] is False and res["reg"] == "searching"
    assert res["rssi_dbm"] == -105  # read after registration gave up, before the deadline
    assert took < 4.5


def test_denied(sim):
    s = sim("denied")
    rc, res, _ = probe(s.port)
    assert rc == 1 and res["reg"] == "denied"


def test_lte_only(sim):
    s = sim("lte_only")
    rc, res, _ = probe(s.port)
    assert rc == 0 and res["registered"] is True and res["cereg"] == 1 and res["creg"] == 0


def test_lte_only_sim7080_without_creg(sim):
    s = sim("lte_only", "sim7080")
    rc, res, _ = probe(s.port, "--model", "sim7080")
    assert rc == 0 and res["creg"] is None and res["cereg"] == 1


@pytest.mark.parametrize("scenario", ["echo_on", "echo_off", "urc_mid", "garbage", "slow_boot", "mute_unknown"])
def test_noisy_lines_still_connect(sim, scenario):
    s = sim(scenario)
    rc, res, _ = probe(s.port, "--apn", "internet")
    assert rc == 0, res
    assert res["sim"] == "ready" and res["rssi_dbm"] == -73 and res["data"] == "connect"


def test_no_carrier(sim):
    s = sim("no_connect")
    rc, res, _ = probe(s.port, "--apn", "internet")
    assert rc == 1 and res["registered"] is True and res["data"] is None


def test_silent_modem_ends_by_itself(sim):
    s = sim("silent")
    rc, res, took = probe(s.port, timeout="30")
    assert rc == 1 and res["error"] == "no_response" and res["registered"] is False
    assert took < 15


@pytest.mark.parametrize("scenario", ["silent", "dead"])
def test_timeout_is_honoured(sim, scenario):
    s = sim(scenario)
    rc, res, took = probe(s.port, timeout="2")
    assert rc == 1 and res["registered"] is False and res["error"] in ("timeout", "no_response")
    assert took < 2.5


def test_signal_loss_sampling(sim):
    s = sim("signal_loss")
    rc, out, err, took = vegw("signal", "--modem", "tcp:127.0.0.1:%d" % s.port, "--seconds", "1.5",
                              "--interval", "0.2")
    res = json.loads(out)
    assert rc == 0
    assert res["samples"] >= 4 and res["unknown"] >= 1
    assert res["min"] == -77 and res["max"] == -77
    assert took < 10


def test_signal_dead_modem(sim):
    s = sim("dead")
    rc, out, err, took = vegw("signal", "--modem", "tcp:127.0.0.1:%d" % s.port, "--seconds", "1", "--timeout", "2")
    res = json.loads(out)
    assert rc == 1 and res["min"] is None and took < 2.5


def test_connection_refused_is_a_status():
    import socket

    sk = socket.socket()
    sk.bind(("127.0.0.1", 0))
    port = sk.getsockname()[1]
    sk.close()
    rc, out, err, _ = vegw("probe", "--modem", "tcp:127.0.0.1:%d" % port, "--timeout", "3")
    assert rc == 1
    assert json.loads(out)["error"] == "open_failed"
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [
    ["probe", "--modem", "tcp:127.0.0.1:notaport"],
    ["probe", "--modem", "tcp:1234"],
    ["probe", "--modem", "tcp:127.0.0.1:1", "--pin", "12ab"],
    ["probe", "--modem", "tcp:127.0.0.1:1", "--timeout", "0"],
    ["probe", "--modem", "tcp:127.0.0.1:1", "--apn", 'a"b'],
    ["signal", "--modem", "tcp:127.0.0.1:1", "--seconds", "-1"],
])
def test_bad_usage_exit_2(args):
    rc, out, err, _ = vegw(*args)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1


def test_missing_serial_device_is_a_status(tmp_path):
    rc, out, err, _ = vegw("probe", "--modem", str(tmp_path / "ttyNONE"), "--timeout", "3")
    assert rc == 1 and json.loads(out)["error"] == "open_failed"


def test_serial_port_through_a_pty(tmp_path):
    # the pyserial path: the simulated modem on a pseudo-terminal
    p = subprocess.Popen([sys.executable, "-m", "vegw.modem_sim", "--pty", "--scenario", "happy"],
                         stdout=subprocess.PIPE, text=True, env=ENV, cwd=str(ROOT))
    try:
        line = p.stdout.readline()
        assert line.startswith("PTY "), line
        dev = line.split()[1]
        rc, out, err, took = vegw("probe", "--modem", dev, "--timeout", "20", "--apn", "internet")
        res = json.loads(out)
        assert rc == 0, (res, err)
        assert res["sim"] == "ready" and res["registered"] is True and res["data"] == "connect"
        assert res["port"] == dev
    finally:
        p.kill()
        p.wait()


def test_signal_cut_by_timeout_keeps_samples(sim):
    s = sim("happy")
    rc, out, err, took = vegw("signal", "--modem", "tcp:127.0.0.1:%d" % s.port, "--seconds", "30",
                              "--interval", "0.2", "--timeout", "2")
    res = json.loads(out)
    assert took < 2.5
    assert res["error"] == "timeout" and res["samples"] >= 3 and res["min"] == -73 and res["avg"] == -73
    assert rc == 0  # readings were taken: the installer gets figures
