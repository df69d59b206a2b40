"""Two runtimes, one set of cases.

Every test module in tests/shared/ is collected by pytest as usual (CPython),
and every test function in it gets a twin item, `name[micropython]`, that runs
the same function under the real MicroPython unix port with an ESP32's heap
(`-X heapsize=111wK`, or a module's `MP_HEAPSIZE` line). Each module runs once
per session in its own micropython process, started by its first twin item.
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT / "tests" / "shared"
sys.path[:0] = [str(ROOT / "firmware" / "lib"), str(ROOT / "firmware"), str(SHARED), str(ROOT / "host_tools")]

MP_TIMEOUT = 400
DEFAULT_HEAP = "111wK"


from vegw.runtime import micropython_binary, micropython_env  # noqa: E402


class _MpRun:
    """One micropython process running one shared test module."""

    def __init__(self, path):
        self.path = path
        self.proc = None
        self.results = None
        self.output = ""

    def start(self):
        """Started by the module's first [micropython] item (with xdist
        --dist loadfile a module's items all run in one worker)."""
        if self.proc is not None:
            return
        path = self.path
        text = path.read_text()
        m = re.search(r"^MP_HEAPSIZE\s*=\s*['\"]([0-9]+w?[KM]?)['\"]", text, re.M)
        heap = m.group(1) if m else DEFAULT_HEAP
        self.proc = subprocess.Popen(
            [micropython_binary(), "-X", "heapsize=" + heap, str(ROOT / "tests" / "mprun.py"), path.stem],
            cwd=str(ROOT), env=micropython_env(SHARED, ROOT / "tests" / "mplib"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

    def result(self, name):
        self.start()
        if self.results is None:
            try:
                self.output, _ = self.proc.communicate(timeout=MP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.output = self.proc.communicate()[0] + "\n[timed out after %ds]" % MP_TIMEOUT
            self.results = {}
            current = None
            for line in self.output.splitlines():
                if line.startswith("@@VEGW "):
                    parts = line.split(" ", 3)
                    if parts[1] == "END":
                        current = None
                        continue
                    current = parts[2]
                    self.results[current] = [parts[1], parts[3] if len(parts) > 3 else ""]
                elif current is not None:
                    self.results[current][1] += line + "\n"
        return self.results.get(name)


_RUNS = {}


class MicroPythonItem(pytest.Item):
    def __init__(self, *, fname, mprun, **kw):
        super().__init__(**kw)
        self.fname = fname
        self.mprun = mprun

    def runtest(self):
        res = self.mprun.result(self.fname)
        if res is None:
            tail = self.mprun.output[-3000:]
            raise AssertionError("no result from micropython for %s; output tail:\n%s" % (self.fname, tail))
        status, detail = res
        if status == "SKIP":
            pytest.skip("micropython: " + detail.strip())
        if status != "PASS":
            raise AssertionError("micropython:\n" + detail)

    def repr_failure(self, excinfo):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, None, "%s[micropython]" % self.fname


def pytest_collection_modifyitems(session, config, items):
    extra = []
    for item in items:
        path = pathlib.Path(str(item.fspath))
        if path.parent != SHARED or not isinstance(item, pytest.Function):
            continue
        if "[" in item.name:
            continue
        run = _RUNS.get(path)
        if run is None:
            run = _RUNS[path] = _MpRun(path)
        extra.append(MicroPythonItem.from_parent(item.parent, name=item.name + "[micropython]", fname=item.name, mprun=run))
    items.extend(extra)


def pytest_terminal_summary(terminalreporter):
    counts = {"cpython": 0, "micropython": 0}
    for rep in terminalreporter.stats.get("passed", []):
        if rep.when == "call" and "/shared/" in rep.nodeid.replace("\\", "/"):
            counts["micropython" if rep.nodeid.endswith("[micropython]") else "cpython"] += 1
    terminalreporter.write_line(
        "shared-code cases passed: %d under CPython, %d under MicroPython" % (counts["cpython"], counts["micropython"])
    )


def pytest_runtest_setup(item):
    # overlap a module's MicroPython run with its CPython items
    run = _RUNS.get(pathlib.Path(str(item.fspath)))
    if run is not None:
        run.start()
