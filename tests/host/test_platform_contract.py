"""The Platform contract of docs/CONTRACTS.md against both platforms: every
required method exists on drivers/platform_esp32.py and drivers/platform_host.py, every
method the app calls on its platform is in the table, and no public method
of a platform is missing from it."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _table():
    text = (ROOT / "docs" / "CONTRACTS.md").read_text()
    sec = text.split("## Platform (")[1].split("\n## ")[0]
    req, opt = set(), set()
    for m in re.finditer(r"^\| `([a-z_]+)(\(.*?\))?`( \(opt\.[^)]*\))? \|", sec, re.M):
        (opt if m.group(3) else req).add(m.group(1))
    return req, opt


def _methods(path):
    tree = ast.parse(path.read_text())
    for n in tree.body:
        if isinstance(n, ast.ClassDef) and n.name == "Platform":
            return {m.name for m in n.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and not m.name.startswith("_")}
    raise AssertionError("no class Platform in %s" % path)


def _called_by_app():
    names = set()
    for f in ("app.py", "startup.py"):
        src = (ROOT / "firmware" / f).read_text()
        names |= set(re.findall(r"self\.p\.([a-z_]+)", src))
        names |= set(re.findall(r"\bplatform\.([a-z_]+)\(", src))
        names |= set(re.findall(r"(?:hasattr|getattr)\((?:self\.p|platform), \"([a-z_]+)\"", src))
    return names


def test_table_parses():
    req, opt = _table()
    assert {"now_s", "sync_clock", "open_vedirect", "reset"} <= req and {"resolver", "link_ok"} <= opt


def test_both_platforms_implement_the_required_methods():
    req, opt = _table()
    for f in ("platform_esp32.py", "platform_host.py"):
        have = _methods(ROOT / "firmware" / "drivers" / f)
        assert req - have == set(), (f, sorted(req - have))
        assert have - req - opt == set(), (f, "public methods not in the contract", sorted(have - req - opt))


def test_everything_the_app_calls_is_in_the_contract():
    req, opt = _table()
    missing = _called_by_app() - req - opt
    assert missing == set(), sorted(missing)
