"""CLI contracts every command shares: `vegw --version`, one name for a
serial port (--port), and a missing optional dependency named with the pip
extra that brings it."""
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VEGW = str(pathlib.Path(sys.executable).with_name("vegw"))

from vegw import __version__, cli  # noqa: E402


def test_version():
    r = subprocess.run([VEGW, "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "vegw %s" % __version__


def test_serial_port_option_is_port_everywhere():
    # every command that opens a serial port calls it --port
    for verb in ("decode", "deploy", "logs", "plot"):
        r = subprocess.run([VEGW, verb, "--help"], capture_output=True, text=True, timeout=30)
        assert "--port" in r.stdout, verb
    r = subprocess.run([VEGW, "modem", "probe", "--help"], capture_output=True, text=True, timeout=30)
    assert "--port PORT" in r.stdout
    r = subprocess.run([VEGW, "modem", "probe", "--port", "tcp:127.0.0.1:notaport"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "notaport" in r.stderr and "Traceback" not in r.stderr


def test_missing_plot_extra_named(tmp_path, monkeypatch, capsys):
    src = tmp_path / "h.jsonl"
    src.write_text(json.dumps({"t": 1795824000, "device": "house", "V": 25.1}) + "\n")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    rc = cli.main(["plot", str(src), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "matplotlib" in err and "pip install 'vegw[plot]'" in err and "Traceback" not in err


def test_missing_sim_extra_named(monkeypatch):
    for m in ("vegw.cmd_sim", "vegw.simulator", "vegw.sim_image", "vegw.sim_demo"):
        monkeypatch.delitem(sys.modules, m, raising=False)
    monkeypatch.setitem(sys.modules, "mpremote", None)
    with pytest.raises(SystemExit) as e:
        cli.main(["sim", "--duration", "1"])
    assert "pip install 'vegw[sim]'" in str(e.value) and "mpremote" in str(e.value)


def test_extras_declared():
    text = (ROOT / "pyproject.toml").read_text()
    for extra in ("plot", "parquet", "sim", "deploy"):
        assert "\n%s = [" % extra in text, extra
