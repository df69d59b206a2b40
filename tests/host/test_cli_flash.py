"""vegw flash: every check that runs before esptool, and the upload step
(--upload-only) against the stand-in board (the unix port behind a pty)."""
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "standin"))

from board import StandinBoard  # noqa: E402

CONFIG = {
    "gateway": {"id": "site-042", "board": "lilygo-t-a7670"},
    "wifi": [{"ssid": "cabin", "password": "long enough"}],
    "mqtt": {"host": "broker.example", "port": 8883, "tls": True, "ca": "certs/ca.pem"},
    "devices": [{"name": "mppt", "type": "vedirect", "uart": 2, "rx": 18}],
}


def vegw(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "vegw.cli"] + list(args), capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT))


def one_line_error(r):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.startswith("vegw flash:") and "warning" not in l]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def image(tmp, chip_id=0, magic=0xE9, name="img.bin", size=4096):
    data = bytearray(size)
    data[0] = magic
    data[12] = chip_id & 0xFF
    data[13] = chip_id >> 8
    p = tmp / name
    p.write_bytes(bytes(data))
    return p


def test_help():
    r = vegw("flash", "--help")
    assert r.returncode == 0
    for word in ("--port", "--board", "--image", "--config", "--upload-only", "esptool"):
        assert word in r.stdout


def test_missing_port_one_line(tmp_path):
    img = image(tmp_path)
    msg = one_line_error(vegw("flash", "--port", "/dev/ttyNOPE9", "--board", "esp32-devkit", "--image", str(img)))
    assert "no serial port /dev/ttyNOPE9" in msg


def test_image_checks_before_the_board(tmp_path):
    port = "/dev/ttyNOPE9"  # never reached: each of these stops before
    msg = one_line_error(vegw("flash", "--port", port, "--board", "esp32-devkit", "--image", str(tmp_path / "none.bin")))
    assert "No such file" in msg and "make firmware" in msg
    msg = one_line_error(vegw("flash", "--port", port, "--board", "esp32-devkit", "--image", str(image(tmp_path, magic=0))))
    assert "not an ESP32 flash image" in msg
    # an S3 image on an ESP32 board, and the other way round
    msg = one_line_error(vegw("flash", "--port", port, "--board", "esp32-devkit", "--image", str(image(tmp_path, 9))))
    assert "image for esp32s3, the board is esp32" in msg
    msg = one_line_error(vegw("flash", "--port", port, "--board", "esp32s3-devkit", "--image", str(image(tmp_path, 0))))
    assert "image for esp32, the board is esp32s3" in msg
    img = image(tmp_path)
    (tmp_path / "img.bin.sha256").write_text("00" * 32 + "  img.bin\n")
    msg = one_line_error(vegw("flash", "--port", port, "--board", "esp32-devkit", "--image", str(img)))
    assert "does not match img.bin.sha256" in msg
    # bootloader at 0x1000 + an app past the end of the 0x1F0000 slot at 0x10000
    big = image(tmp_path, name="big.bin", size=0x200000 - 0x1000 + 1)
    msg = one_line_error(vegw("flash", "--port", port, "--board", "esp32-devkit", "--image", str(big)))
    assert "runs past the app slot, which ends at 0x200000" in msg
    msg = one_line_error(vegw("flash", "--port", port, "--board", "no-such-board"))
    assert "unknown board 'no-such-board'" in msg
    # an invalid config is refused before the board is touched
    (tmp_path / "bad.json").write_text(json.dumps(dict(CONFIG, devices=[{"name": "x", "type": "vedirect", "uart": 2, "rx": 22}])))
    msg = one_line_error(vegw("flash", "--port", port, "--board", "lilygo-t-a7670", "--image", str(image(tmp_path, name="ok.bin")),
                              "--config", str(tmp_path / "bad.json")))
    assert "devices[0].rx" in msg and "GPS" in msg


def test_upload_only_puts_the_files_on_the_board(tmp_path):
    (tmp_path / "site.json").write_text(json.dumps(CONFIG))
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    root = tmp_path / "flash"
    root.mkdir()
    with StandinBoard(root) as b:
        r = vegw("flash", "--port", b.port, "--board", "lilygo-t-a7670", "--config", str(tmp_path / "site.json"),
                 "--upload-only", "--wait", "0")
    assert r.returncode == 0, r.stderr
    assert (root / "config.json").read_bytes() == (tmp_path / "site.json").read_bytes()
    assert json.loads((root / "board.json").read_text())["name"] == "lilygo-t-a7670"
    assert (root / "certs" / "ca.pem").read_text().startswith("-----BEGIN")  # its folder made on the board
    assert (root / "main.py").read_bytes() == (ROOT / "firmware" / "main.py").read_bytes()
    assert (root / "boot.py").read_bytes() == (ROOT / "firmware" / "boot.py").read_bytes()
    assert not (root / "lib").exists()  # the image holds the code: nothing into /lib
    # the stand-in is not the vegw image: said, not fatal
    assert "not the vegw lilygo-t-a7670 image" in r.stderr
