"""vegw deploy against the stand-in board (tests/standin): the MicroPython
unix port behind a pty, speaking its real raw REPL, with a temp dir as "/".
The deployed .mpy files are compiled for the stand-in's own .mpy format, so
after the soft reset the stand-in really imports them and prints the status
line the test checks."""
import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "standin"))

from board import StandinBoard  # noqa: E402
from vegw.deploy_link import mpy_info  # noqa: E402
from vegw import deploy_build  # noqa: E402

CONFIG = {
    "gateway": {"id": "site-042", "board": "esp32-devkit"},
    "wifi": [{"ssid": "cabin", "password": "long enough"}],
    "mqtt": {"host": "broker.example", "port": 1883, "prefix": "vegw"},
    "devices": [{"name": "shunt", "type": "ble", "mac": "AA:BB:CC:DD:EE:FF", "key": "00112233445566778899aabbccddeeff"}],
}
BOARD = {"mcu": "esp32", "uarts": [1, 2]}

MAIN = """import gwinfo
print("vegw: status " + gwinfo.status())
"""
GWINFO = """import json
import helper
def status():
    return json.dumps({"ok": True, "table": helper.total(), "cfg": open("/config.json").read()[:1] == "{"})
"""


def helper_src(n=400, salt=0):
    # a module big enough to need several write chunks on the wire
    rows = ",\n".join("    (%d, %d, 'row %d')" % (i, i * i + salt, i) for i in range(n))
    return "TABLE = [\n%s,\n]\n\ndef total():\n    return sum(r[1] for r in TABLE)\n" % rows


def make_tree(tmp, salt=0):
    fw = tmp / "fw"
    (fw / "lib").mkdir(parents=True, exist_ok=True)
    (fw / "drivers").mkdir(exist_ok=True)
    (fw / "main.py").write_text(MAIN)
    (fw / "lib" / "gwinfo.py").write_text(GWINFO)
    (fw / "lib" / "helper.py").write_text(helper_src(salt=salt))
    (fw / "drivers" / "fake_uart.py").write_text("def open(n):\n    return n\n")
    (tmp / "esp32-devkit.json").write_text(json.dumps(BOARD))
    (tmp / "config.json").write_text(json.dumps(CONFIG))
    return fw


def deploy(tmp, port, *extra, fw=None):
    cmd = [sys.executable, "-m", "vegw.cli", "deploy", "--port", port,
           "--firmware", str(fw or tmp / "fw"), "--build-dir", str(tmp / "build"),
           "--config", str(tmp / "config.json"), "--board", str(tmp / "esp32-devkit.json"), "--wait", "20"] + list(extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(ROOT))


def expected_total(salt=0):
    return sum(i * i + salt for i in range(400))


def files_in(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = pathlib.Path(dirpath) / n
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def one_line_error(r):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.startswith("vegw deploy:") and "warning" not in l and ", .mpy v" not in l]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def copied(r):
    return [l.split("] ", 1)[1].split(" (")[0] for l in r.stderr.splitlines() if l.strip().startswith("[")]


def test_mpy_info_decoding():
    assert mpy_info(2822) == (6, 3, "x64")  # the unix port on x86-64
    assert mpy_info(6 | 3 << 8 | 10 << 10) == (6, 3, "xtensawin")  # ESP32, S3
    assert mpy_info(6 | 3 << 8 | 11 << 10) == (6, 3, "rv32imc")  # C3, C6
    assert deploy_build.counterpart("/lib/x.mpy") == "/lib/x.py"
    assert deploy_build.counterpart("/main.py") is None


def test_fresh_board_then_changed_only(tmp_path):
    fw = make_tree(tmp_path)
    root = tmp_path / "flash"
    root.mkdir()
    with StandinBoard(root) as b:
        r = deploy(tmp_path, b.port)
        assert r.returncode == 0, r.stderr
        assert "first status: vegw: status" in r.stdout
        status = json.loads(r.stdout.split("vegw: status ", 1)[1].splitlines()[0])
        assert status == {"ok": True, "table": expected_total(), "cfg": True}
        assert b.boots == 2  # power-on + the soft reset
    files = files_in(root)
    assert files["main.py"] == MAIN.encode()  # main.py stays source
    assert files["lib/gwinfo.mpy"][:2] == b"M\x06" and "lib/gwinfo.py" not in files
    assert files["drivers/fake_uart.mpy"][:2] == b"M\x06"
    assert json.loads(files["config.json"]) == CONFIG
    assert json.loads(files["board.json"]) == BOARD
    assert not [n for n in files if n.endswith(".part")]
    assert sorted(copied(r)) == ["/board.json", "/config.json", "/drivers/fake_uart.mpy", "/lib/gwinfo.mpy", "/lib/helper.mpy", "/main.py"]

    # change one module: only that file goes over the wire
    (fw / "lib" / "helper.py").write_text(helper_src(salt=5))
    with StandinBoard(root) as b:
        r = deploy(tmp_path, b.port)
        assert r.returncode == 0, r.stderr
        assert copied(r) == ["/lib/helper.mpy"]
        assert json.loads(r.stdout.split("vegw: status ", 1)[1].splitlines()[0])["table"] == expected_total(5)
        assert "4 unchanged" in r.stdout or "5 unchanged" in r.stdout

    # nothing changed: nothing copied, still reset and checked
    with StandinBoard(root) as b:
        r = deploy(tmp_path, b.port)
        assert r.returncode == 0, r.stderr
        assert copied(r) == [] and "copied 0 files" in r.stdout


def test_dry_run_writes_nothing(tmp_path):
    fw = make_tree(tmp_path)
    root = tmp_path / "flash"
    (root / "lib").mkdir(parents=True)
    (root / "main.py").write_text(MAIN)  # already current
    (root / "lib" / "gwinfo.py").write_text("old = 1\n")  # stale source twin of gwinfo.mpy
    (root / "lib" / "helper.mpy.part").write_bytes(b"M\x06half")  # left by a cut copy
    before = files_in(root)
    with StandinBoard(root) as b:
        r = deploy(tmp_path, b.port, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert files_in(root) == before
    out = r.stdout.splitlines()
    copy = sorted(l.split()[1] for l in out if l.startswith("copy "))
    assert copy == ["/board.json", "/config.json", "/drivers/fake_uart.mpy", "/lib/gwinfo.mpy", "/lib/helper.mpy"]
    removes = sorted(l.split()[1] for l in out if l.startswith("remove "))
    assert removes == ["/lib/gwinfo.py", "/lib/helper.mpy.part"]
    assert "nothing written" in out[-1] and "1 unchanged" in out[-1]

    # the real deploy removes the stale twin and the stray .part
    with StandinBoard(root) as b:
        r = deploy(tmp_path, b.port)
    assert r.returncode == 0, r.stderr
    files = files_in(root)
    assert "lib/gwinfo.py" not in files and "lib/helper.mpy.part" not in files
    assert "/main.py" not in copied(r)


def test_disconnect_mid_copy_then_resume(tmp_path):
    make_tree(tmp_path)
    root = tmp_path / "flash"
    root.mkdir()
    # the board unplugs itself after 4000 bytes written to its files:
    # inside the helper module, the largest one
    with StandinBoard(root, cut_after=4000) as b:
        r = deploy(tmp_path, b.port)
        assert b.unplugged.is_set()
    msg = one_line_error(r)
    assert "disconnected" in msg and "run the same command again" in msg
    first = copied(r)
    files = files_in(root)
    assert any(n.endswith(".part") for n in files)  # the cut file stayed a .part
    # nothing half-written under a real name
    full = {}
    for dev in first[:-1]:  # every file before the cut one is complete
        full[dev.lstrip("/")] = files[dev.lstrip("/")]
    cut = first[-1].lstrip("/")
    assert cut not in files

    with StandinBoard(root) as b:
        r2 = deploy(tmp_path, b.port)
    assert r2.returncode == 0, r2.stderr
    assert "first status: vegw: status" in r2.stdout
    again = copied(r2)
    assert cut in [d.lstrip("/") for d in again]
    assert not set(again) & set(first[:-1])  # complete files were not copied again
    files = files_in(root)
    assert not [n for n in files if n.endswith(".part")]
    for name, data in full.items():
        assert files[name] == data


def test_no_compile_copies_sources(tmp_path):
    fw = make_tree(tmp_path)
    root = tmp_path / "flash"
    root.mkdir()
    with StandinBoard(root) as b:
        r = deploy(tmp_path, b.port, "--no-compile")
    assert r.returncode == 0, r.stderr
    files = files_in(root)
    assert files["lib/helper.py"] == (fw / "lib" / "helper.py").read_bytes()
    assert "lib/helper.mpy" not in files


def test_invalid_config_refused_before_touching_the_board(tmp_path):
    make_tree(tmp_path)
    bad = dict(CONFIG)
    bad["devices"] = [dict(CONFIG["devices"][0], key="0123")]
    (tmp_path / "config.json").write_text(json.dumps(bad))
    r = deploy(tmp_path, "/dev/vegw-no-such-port")
    msg = one_line_error(r)
    assert "devices[0].key" in msg and "32 hex" in msg and "not deploying" in msg
    (tmp_path / "config.json").write_text('{"gateway": {"id": "x",}}')
    msg = one_line_error(deploy(tmp_path, "/dev/vegw-no-such-port"))
    assert "not valid JSON" in msg and "line 1" in msg


def test_starter_placeholders_refused_before_touching_the_board(tmp_path):
    # `config validate` only warns on CHANGE-ME; a deploy of one would boot a
    # gateway that can never connect
    make_tree(tmp_path)
    cfg = dict(CONFIG, wifi=[{"ssid": "CHANGE-ME-ssid", "password": "CHANGE-ME-wifi-password"}])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    msg = one_line_error(deploy(tmp_path, "/dev/vegw-no-such-port"))
    assert "placeholder" in msg and "wifi[0].ssid" in msg and "wifi[0].password" in msg
    assert "cannot open" not in msg
    # the example BLE key of the starter config too
    cfg = dict(CONFIG, devices=[dict(CONFIG["devices"][0], key="0123456789abcdef0123456789abcdef")])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert "devices[0].key" in one_line_error(deploy(tmp_path, "/dev/vegw-no-such-port"))


def test_bad_inputs_one_line(tmp_path):
    make_tree(tmp_path)
    msg = one_line_error(deploy(tmp_path, "/dev/vegw-no-such-port"))
    assert "cannot open /dev/vegw-no-such-port" in msg
    r = subprocess.run([sys.executable, "-m", "vegw.cli", "deploy", "--port", "/dev/null", "--board", "no-such-board"],
                       capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert "unknown board 'no-such-board'" in one_line_error(r)
    (tmp_path / "other.json").write_text(json.dumps(BOARD))
    r = subprocess.run([sys.executable, "-m", "vegw.cli", "deploy", "--port", "/dev/null", "--board", str(tmp_path / "other.json"),
                        "--config", str(tmp_path / "config.json")], capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert "gateway.board 'esp32-devkit'" in one_line_error(r)


def test_no_status_line_is_an_error(tmp_path):
    fw = make_tree(tmp_path)
    (fw / "main.py").write_text("import gwinfo\nprint('booted without status')\nraise ValueError('bad wiring')\n")
    root = tmp_path / "flash"
    root.mkdir()
    with StandinBoard(root) as b:
        cmd = [sys.executable, "-m", "vegw.cli", "deploy", "--port", b.port, "--firmware", str(fw),
               "--build-dir", str(tmp_path / "build"), "--wait", "3"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    msg = one_line_error(r)
    assert "no 'vegw: status' line" in msg and "bad wiring" in msg


MQTT_MAIN = """import json
import asyncio
import mqtt_async
cfg = json.loads(open("/config.json").read())
async def go():
    m = cfg["mqtt"]
    c = mqtt_async.MQTTClient("gw-" + cfg["gateway"]["id"], m["host"], m["port"])
    if await c.connect() == 0:
        pid = await c.publish("%s/%s/status" % (m["prefix"], cfg["gateway"]["id"]), b'{"up": true}', qos=1)
        await c.wait_puback(pid, 3000)
        await c.disconnect()
asyncio.run(go())
"""


def test_wait_for_status_over_mqtt(tmp_path):
    mosq = "/usr/sbin/mosquitto"
    if not os.path.exists(mosq):
        pytest.skip("Debian mosquitto not installed (make deps)")
    import socket
    import time

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = tmp_path / "m.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
    broker = subprocess.Popen([mosq, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        fw = make_tree(tmp_path)
        (fw / "main.py").write_text(MQTT_MAIN)
        for mod in ("mqtt_async.py", "mqtt_codec.py", "clock.py"):  # the client, its packets, its ticks
            (fw / "lib" / mod).write_bytes((ROOT / "firmware" / "lib" / mod).read_bytes())
        cfg = dict(CONFIG, mqtt={"host": "127.0.0.1", "port": port, "prefix": "vegw"})
        (tmp_path / "config.json").write_text(json.dumps(cfg))
        root = tmp_path / "flash"
        root.mkdir()
        with StandinBoard(root) as b:
            r = deploy(tmp_path, b.port, "--broker", "127.0.0.1:%d" % port)
        assert r.returncode == 0, r.stderr
        assert 'first status: vegw/site-042/status {"up": true}' in r.stdout
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def test_progress_bar_on_a_terminal():
    import io
    from vegw.cmd_deploy import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    p = Progress(4096, 2, stream=out)
    p.file("/lib/a.mpy", 1024)
    p.add(1024)
    p.file("/lib/b.mpy", 3072)
    p.add(3072)
    p.end()
    frames = out.getvalue().split("\r")
    assert "[######..................]  25%" in frames[2]
    assert "[########################] 100%" in frames[-1] and "2/2 /lib/b.mpy" in frames[-1]
    assert out.getvalue().endswith("\n")


def test_device_packages_listed_when_missing(tmp_path, monkeypatch, capsys):
    # DEVICE_PACKAGES is empty today; with an entry, a dry run lists the mip
    # install when the probe file is missing and not when it is present.
    from vegw import cli

    make_tree(tmp_path)
    monkeypatch.setattr(deploy_build, "DEVICE_PACKAGES", [("aioble", "/lib/aioble/__init__.mpy")])
    root = tmp_path / "flash"
    root.mkdir()
    argv = ["deploy", "--firmware", str(tmp_path / "fw"), "--build-dir", str(tmp_path / "build"), "--dry-run"]
    with StandinBoard(root) as b:
        assert cli.main(argv + ["--port", b.port]) == 0
    assert "install aioble (mip)" in capsys.readouterr().out
    (root / "lib" / "aioble").mkdir(parents=True)
    (root / "lib" / "aioble" / "__init__.mpy").write_bytes(b"M\x06")
    with StandinBoard(root) as b:
        assert cli.main(argv + ["--port", b.port]) == 0
    out = capsys.readouterr().out
    assert "install" not in out and "/lib/aioble/__init__.mpy" not in out


def test_ca_file_uploaded_with_the_config(tmp_path):
    make_tree(tmp_path)
    cfg = dict(CONFIG, mqtt={"host": "broker.example", "port": 8883, "prefix": "vegw", "tls": True, "ca": "certs/ca.pem"})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    root = tmp_path / "flash"
    root.mkdir()
    with StandinBoard(root) as b:
        r = deploy(tmp_path, b.port, "--no-reset")
    assert r.returncode == 0, r.stderr
    assert (root / "certs" / "ca.pem").read_bytes() == (tmp_path / "certs" / "ca.pem").read_bytes()


def test_mpy_into_lib_refused_on_a_board_without_psram(tmp_path):
    make_tree(tmp_path)
    # the repository's board files: esp32-devkit has no PSRAM, the T-A7670 has 8 MB
    cfg = dict(CONFIG, gateway={"id": "site-042", "board": "esp32-devkit"})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "vegw.cli", "deploy", "--port", str(tmp_path / "no-such-port"),
           "--firmware", str(tmp_path / "fw"), "--build-dir", str(tmp_path / "build"),
           "--config", str(tmp_path / "config.json"), "--board", "esp32-devkit"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    msg = one_line_error(r)
    # refused before the port is opened, with what to do instead
    assert "esp32-devkit has no PSRAM" in msg and "vegw flash --port PORT --board esp32-devkit" in msg
    assert "cannot open" not in r.stderr
    # sources for development are still allowed (they reach the port, which is missing here)
    r = subprocess.run(cmd + ["--no-compile"], capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert "no PSRAM" not in r.stderr and "no-such-port" in one_line_error(r)


def test_simulator_files_never_deployed():
    devs = [dev for dev, _ in deploy_build.sources(ROOT / "firmware")]
    for sim in ("/host_main.py", "/host_boot.py", "/drivers/platform_host.py", "/drivers/nor_sim.py",
                "/drivers/ble_hood.py", "/drivers/wifi_host.py", "/drivers/ble_host.py", "/drivers/relay_host.py"):
        assert sim not in devs, sim
    for dev in ("/main.py", "/boot.py", "/app.py", "/drivers/platform_esp32.py", "/drivers/wifi.py", "/lib/gateway.py"):
        assert dev in devs, dev
    assert not [d for d in devs if d.endswith("_host.py")]


def test_machine_code_goes_as_source_when_the_board_could_not_load_ours(tmp_path):
    # lib/vedirect_kernel.py holds viper machine code: its .mpy loads only on
    # a firmware of our mpy-cross's exact sub-version and a known arch; other
    # modules are bytecode and load on any v6 firmware
    fw = tmp_path / "fw"
    (fw / "lib").mkdir(parents=True)
    (fw / "lib" / "k.py").write_text("import micropython\n\n@micropython.viper\ndef f(x: int) -> int:\n    return x\n")
    (fw / "lib" / "plain.py").write_text("X = 1\n")

    def shipped(**kw):
        return sorted(dev for dev, _ in deploy_build.build(fw, tmp_path / "b", mpy=6, **kw))

    assert shipped(arch="xtensawin", minor=deploy_build.NATIVE_SUB) == ["/lib/k.mpy", "/lib/plain.mpy"]
    assert shipped(arch="xtensawin", minor=deploy_build.NATIVE_SUB - 1) == ["/lib/k.py", "/lib/plain.mpy"]
    assert shipped(arch="none", minor=deploy_build.NATIVE_SUB) == ["/lib/k.py", "/lib/plain.mpy"]
    assert deploy_build.has_native_code(ROOT / "firmware" / "lib" / "vedirect_kernel.py")
