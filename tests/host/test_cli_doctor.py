"""vegw doctor against the stand-in board (the MicroPython unix port behind a
pty, tests/standin): the real probe runs there over the real raw REPL. The
unix port has no ESP32 hardware modules, so the test puts small stand-ins in
the board's /lib (tests/standin/hw) fed from files in its root: VE.Direct
bytes (a real capture), adverts, an access point, a scripted modem, the
partition table and a flash log written by the real lib/flashlog. The clock,
the heap, the VE.Direct checksum reading, the broker TCP check (a real socket
on the unix port) and the MQTT connect (a real Mosquitto) are not simulated."""
import json
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "standin"))

from board import StandinBoard  # noqa: E402

from vegw import doctor_probe  # noqa: E402
from vegw.cmd_doctor import format_line  # noqa: E402

MODULES = "esp32=standin_esp32,machine=standin_machine,bluetooth=standin_bluetooth,network=standin_network"
KEY = "0123456789abcdef0123456789abcdef"
MODEM_OK = {"AT": "OK", "AT+CPIN?": "+CPIN: READY\r\n\r\nOK", "AT+CEREG?": "+CEREG: 0,1\r\n\r\nOK",
            "AT+CREG?": "+CREG: 0,1\r\n\r\nOK", "AT+CSQ": "+CSQ: 20,99\r\n\r\nOK"}


def config(broker_port):
    return {
        "gateway": {"id": "site-042", "board": "lilygo-t-a7670"},
        "wifi": [{"ssid": "cabin", "password": "long enough"}],
        "modem": {"apn": "internet"},
        "mqtt": {"host": "127.0.0.1", "port": broker_port},
        "devices": [
            {"name": "mppt", "type": "vedirect", "uart": 2, "rx": 18},
            {"name": "bmv", "type": "vedirect", "uart": 2, "rx": 34},
            {"name": "shunt", "type": "ble", "mac": "AA:BB:CC:DD:EE:01", "key": KEY},
            {"name": "solar", "type": "ble", "mac": "AA:BB:CC:DD:EE:02", "key": KEY},
        ],
    }


def flash_log(path, nblocks):
    """A vegwlog partition image written by the real flash log: records, an upload cursor."""
    sys.path.insert(0, str(ROOT / "firmware"))
    from drivers.nor_sim import NorSim
    import flashlog

    bd = NorSim(nblocks, path=str(path))
    log = flashlog.FlashLog(bd)
    for i in range(300):
        log.append(1, bytes(200))
        log.flush()
    acked = log.next_seq - 40
    assert log.mark_uploaded(acked)
    used = sum(1 for i in range(2, nblocks) if bd.image()[i * 4096:i * 4096 + 4] == b"VGWL")
    bd.close()
    return acked, used


def make_board(tmp, broker_port, modem=MODEM_OK, partitions="lilygo-t-a7670"):
    root = tmp / "flash"
    (root / "lib").mkdir(parents=True)
    (root / "hw").mkdir()
    for f in (ROOT / "tests" / "standin" / "hw").glob("standin_*.py"):
        shutil.copy(f, root / "lib" / f.name)
    shutil.copy(ROOT / "boards" / "lilygo-t-a7670" / "board.json", root / "board.json")
    (root / "config.json").write_text(json.dumps(config(broker_port)))
    hw = root / "hw"
    shutil.copy(ROOT / "boards" / partitions / "partitions.csv", hw / "partitions.csv")
    (hw / "uart_18.bin").write_bytes((ROOT / "tests" / "fixtures" / "gen_mppt.bin").read_bytes())
    (hw / "uart_34.bin").write_bytes(bytes((i * 37 + 11) & 0xFF for i in range(900)))  # noise, no block
    (hw / "ble.json").write_text(json.dumps([{"mac": "AA:BB:CC:DD:EE:01", "rssi": -67},
                                             {"mac": "11:22:33:44:55:66", "rssi": -50}]))
    (hw / "wifi.json").write_text(json.dumps({"ssid": "cabin", "password": "long enough", "rssi": -61}))
    (hw / "modem.json").write_text(json.dumps({"rx": 27, "replies": modem}))
    # ESP32 WROVER with PSRAM: internal regions plus the 4 MB SPIRAM region
    (hw / "heap.json").write_text(json.dumps([[180000, 90000, 65536, 80000], [4194304, 4000000, 3900000, 3800000]]))
    acked = used = None
    if partitions == "lilygo-t-a7670":
        acked, used = flash_log(hw / "vegwlog.bin", 0x80000 // 4096)
    return root, acked, used


def doctor(port, *extra):
    cmd = [sys.executable, "-m", "vegw.cli", "doctor", "--port", port, "--standin-modules", MODULES,
           "--listen", "0.5", "--scan", "0.5", "--no-reset"] + list(extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(ROOT))


def lines_of(r):
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] in ("ok", "WARN", "FAIL", "skip"):
            name = parts[1]
            rest = parts[2]
            if name == "uart":  # "uart mppt ..."
                dev, rest = rest.split(None, 1)
                name = "uart " + dev
            out[name] = (parts[0], rest)
    return out


def test_help_and_missing_port():
    r = subprocess.run([sys.executable, "-m", "vegw.cli", "doctor", "--help"], capture_output=True, text=True, cwd=str(ROOT))
    assert r.returncode == 0 and "--port" in r.stdout and "flashlog" in r.stdout and "modem" in r.stdout
    r = subprocess.run([sys.executable, "-m", "vegw.cli", "doctor", "--port", "/dev/ttyNOPE7"], capture_output=True,
                       text=True, cwd=str(ROOT))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no serial port /dev/ttyNOPE7" in r.stderr


def test_whole_board(tmp_path, broker):
    port = int(broker.rsplit(":", 1)[1])
    root, acked, used = make_board(tmp_path, port)
    with StandinBoard(root) as b:
        r = doctor(b.port)
        assert b.boots == 2  # power-on, then the doctor's soft reset into the raw REPL (clean heap)
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    got = lines_of(r)
    assert r.returncode == 1, r.stdout  # bmv and solar fail
    assert got["firmware"][0] == "WARN" and "not the vegw lilygo-t-a7670 image" in got["firmware"][1]
    assert got["memory"][0] == "ok" and "PSRAM yes" in got["memory"][1] and "IDF heap 3994 KB free" in got["memory"][1]
    assert got["partitions"][0] == "ok" and "vegwlog" in got["partitions"][1]
    assert got["clock"][0] == "ok" and "UTC 20" in got["clock"][1]
    # a real capture: every whole block checks out; the UART got the board's spare TX pin
    status, text = got["uart mppt"]
    assert status == "ok" and "rx=18 tx=21 (spare)" in text and ", 0 bad" in text
    blocks = int(text.split("bytes in 0.5 s, ")[1].split()[0])
    assert blocks == (ROOT / "tests" / "fixtures" / "gen_mppt.bin").read_bytes()[:2048].count(b"Checksum\t") - 1
    assert got["uart bmv"][0] == "FAIL" and "900 bytes" in got["uart bmv"][1] and "no valid block" in got["uart bmv"][1]
    assert got["ble"][0] == "FAIL" and "saw 1 of 2" in got["ble"][1] and "shunt -67 dBm" in got["ble"][1]
    assert "not seen: solar AA:BB:CC:DD:EE:02" in got["ble"][1] and "Instant readout" in got["ble"][1]
    assert got["wifi"] == ("ok", "associated to cabin, RSSI -61 dBm, IP 127.0.0.1")
    assert got["broker"] == ("ok", "TCP to 127.0.0.1:%d from the board" % port)
    assert got["modem"] == ("ok", "SIM ready, registered (home), signal -73 dBm")
    assert got["flashlog"][0] == "ok"
    assert got["flashlog"][1].startswith("%d of 126 log sectors in use" % used)
    assert "upload cursor at seq %d" % acked in got["flashlog"][1]
    assert got["mqtt"] == ("ok", "connected to 127.0.0.1:%d" % port)
    assert "summary: 9 ok, 1 warnings, 2 failed, 0 skipped" in r.stdout


def test_failures_say_what_to_do(tmp_path, broker):
    port = int(broker.rsplit(":", 1)[1])
    sms_only = dict(MODEM_OK, **{"AT+CEREG?": "+CEREG: 0,6\r\n\r\nOK", "AT+CREG?": "+CREG: 0,0\r\n\r\nOK"})
    # the stock table: no vegwlog partition
    root, _, _ = make_board(tmp_path, port, modem=sms_only, partitions="esp32-devkit")
    shutil.copy(ROOT / "tests" / "fixtures" / "gen_mppt.bin", root / "hw" / "vegwlog.bin")
    (root / "hw" / "partitions.csv").write_text("nvs, data, nvs, 0x9000, 0x6000,\nfactory, app, factory, 0x10000, 0x1F0000,\n"
                                                "vfs, data, fat, 0x200000, 0x200000,\n")
    cfg = json.loads((root / "config.json").read_text())
    cfg["wifi"][0]["password"] = "not the one"
    (root / "config.json").write_text(json.dumps(cfg))
    with StandinBoard(root) as b:
        r = doctor(b.port, "--only", "partitions,wifi,modem,flashlog")
    got = lines_of(r)
    assert r.returncode == 1 and set(got) == {"partitions", "wifi", "modem", "flashlog"}, r.stdout
    assert got["partitions"][0] == "FAIL" and "no vegwlog" in got["partitions"][1] and "vegw flash" in got["partitions"][1]
    assert got["wifi"][0] == "FAIL" and "cabin: wrong password" in got["wifi"][1] and "-> check ssid/password" in got["wifi"][1]
    assert got["modem"][0] == "FAIL" and "registered for SMS only (home)" in got["modem"][1] and "data plan" in got["modem"][1]
    assert got["flashlog"][0] == "WARN" and "no vegwlog partition" in got["flashlog"][1]


def test_ve_blocks_counts_checksums():
    data = (ROOT / "tests" / "fixtures" / "gen_mppt.bin").read_bytes()
    whole = data.count(b"Checksum\t") - 1  # the first block may be partial
    good, bad = doctor_probe.ve_blocks(bytearray(data), len(data))
    assert (good, bad) == (whole, 0) and whole > 10
    broken = bytearray(data)
    i = data.index(b"V\t", data.index(b"Checksum\t") + 10)
    broken[i + 2] ^= 1  # one bit in the 2nd block
    assert doctor_probe.ve_blocks(broken, len(broken)) == (whole - 1, 1)
    # a HEX frame between blocks does not count
    j = data.index(b"Checksum\t") + 10
    hexed = bytearray(data[:j] + b":A0102000543\n" + data[j:])
    assert doctor_probe.ve_blocks(hexed, len(hexed)) == (whole, 0)


def test_format_line():
    assert format_line("clock", "ok", "UTC x", "never shown") == "ok    clock        UTC x"
    assert format_line("wifi", "fail", "not associated", "move closer") == "FAIL  wifi         not associated -> move closer"
