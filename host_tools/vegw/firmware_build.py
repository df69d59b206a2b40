"""`make firmware BOARD=NAME`: the board image, built in Espressif's ESP-IDF
container with the pinned MicroPython release (boards/toolchain.env).

    python -m vegw.firmware_build --board esp32-devkit [--out build/firmware]

Steps: check the board directory (boards/NAME: mpconfigboard.cmake,
manifest.py, partitions.csv); check that Docker is usable (else say exactly
what is missing and exit 2); fetch MicroPython at the pinned tag into
build/micropython-<tag> (git); run the port's build in espressif/idf:<IDF>
with BOARD_DIR pointing at boards/NAME; check the app against its slot in
partitions.csv (exit 1 when it outgrows it); copy the merged image
(bootloader + partition table + app, the port's firmware.bin) to
<out>/vegw-NAME-<tag>.bin with a .sha256 beside it.
"""
import argparse
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys

from . import ROOT

BOARDS = ROOT / "boards"
MICROPYTHON_GIT = "https://github.com/micropython/micropython.git"
# Where the merged image starts in flash: the bootloader's offset.
FLASH_OFFSET = {"esp32": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0}
BOARD_FILES = ("board.json", "mpconfigboard.cmake", "mpconfigboard.h", "sdkconfig.board", "manifest.py", "partitions.csv")


class BuildError(Exception):
    pass


def toolchain(path=None):
    """The KEY=value lines of boards/toolchain.env as a dict
    (MICROPYTHON_VERSION, IDF_VERSION, APP_SLOT_MIN)."""
    out = {}
    for line in pathlib.Path(path or BOARDS / "toolchain.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def board_names():
    return sorted(d.name for d in BOARDS.iterdir() if (d / "mpconfigboard.cmake").is_file())


def board_dir(name):
    d = BOARDS / name
    if not name or "/" in name or name.startswith(".") or not (d / "mpconfigboard.cmake").is_file():
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise BuildError("unknown board %r (boards with an image: %s)" % (shown, ", ".join(board_names())))
    missing = [f for f in BOARD_FILES if not (d / f).is_file()]
    if missing:
        raise BuildError("boards/%s is missing %s" % (name, ", ".join(missing)))
    return d


def frozen_files(manifest):
    """[(path in the image, source file)] that a board manifest freezes, read
    the way MicroPython's tools/manifestfile.py reads it (freeze, package,
    module, include; paths relative to the manifest). Includes of the port's
    own manifest ($(PORT_DIR)/...) and require() are listed in the second
    value: ([(image path, source)], [port includes and requires])."""
    files, external = [], []

    def run(path):
        path = pathlib.Path(path).resolve()
        here = path.parent

        def rel(p):
            return (here / p).resolve()

        def include(p, **kw):
            if "$(" in p:
                external.append(p)
            else:
                run(rel(p) / "manifest.py" if rel(p).is_dir() else rel(p))

        def freeze(p, script=None, opt=None):
            if "$(" in p:
                external.append(p)
                return
            base = rel(p)
            if not base.is_dir():
                raise BuildError("%s: freeze(%r): no such directory" % (path, p))
            names = [script] if isinstance(script, str) else script
            for f in sorted(base.rglob("*.py")) if names is None else [base / n for n in names]:
                files.append((f.relative_to(base).as_posix(), f))

        def package(name, files=None, base_path=".", opt=None):
            base = rel(base_path)
            pkg = base / name
            chosen = [pkg / f for f in files] if files is not None else sorted(pkg.rglob("*.py"))
            for f in chosen:
                add(f.relative_to(base).as_posix(), f)

        def module(name, base_path=".", opt=None):
            add(name, rel(base_path) / name)

        def add(target, f):
            files.append((target, f))

        def require(name, **kw):
            external.append("require(%r)" % name)

        def metadata(**kw):
            pass

        code = compile(path.read_text(), str(path), "exec")
        exec(code, {"include": include, "freeze": freeze, "package": package, "module": module,
                    "require": require, "metadata": metadata, "options": None})

    run(manifest)
    return files, external


def _num(s):
    s = s.strip()
    if s.lower().startswith("0x"):
        return int(s, 16)
    if s[-1:] in ("K", "k"):
        return int(s[:-1]) * 1024
    if s[-1:] in ("M", "m"):
        return int(s[:-1]) * 1024 * 1024
    return int(s)


def partitions(path):
    """Rows of a partitions.csv: [(name, type, subtype, offset, size)], offsets
    filled in where left empty (each follows the last, apps aligned to 64 KB)."""
    rows = []
    end = 0x9000  # after the bootloader and the partition table at 0x8000
    for line in pathlib.Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 5:
            raise BuildError("%s: row %r has fewer than 5 columns" % (path, line))
        name, typ, sub = cols[0], cols[1], cols[2]
        if cols[3]:
            off = _num(cols[3])
        else:
            align = 0x10000 if typ == "app" else 0x1000
            off = (end + align - 1) // align * align
        size = _num(cols[4])
        rows.append((name, typ, sub, off, size))
        end = off + size
    return rows


def table_problems(rows, flash_bytes, app_min):
    """Every problem of a partition table, as strings ([] when sound)."""
    p = []
    end = 0x9000
    for name, typ, sub, off, size in rows:
        if off < end:
            p.append("%s at 0x%x overlaps what comes before (ends at 0x%x)" % (name, off, end))
        if off % 0x1000 or size % 0x1000:
            p.append("%s: offset and size must be multiples of 4 KB" % name)
        if typ == "app" and off % 0x10000:
            p.append("%s: an app partition must start on a 64 KB boundary" % name)
        end = max(end, off + size)
    if end > flash_bytes:
        p.append("the table ends at 0x%x, past the %d MB flash" % (end, flash_bytes // (1024 * 1024)))
    slot = app_slot(rows)
    if slot is None:
        p.append("no app partition")
    elif slot < app_min:
        p.append("the app slot (0x%x) is smaller than 0x%x" % (slot, app_min))
    return p


def app_slot(rows):
    """Size of the first app partition (where the image's app goes), or None."""
    for name, typ, sub, off, size in rows:
        if typ == "app":
            return size
    return None


def check_app_size(app_bytes, rows):
    """(ok, one-line report) for an app binary of app_bytes against the table."""
    slot = app_slot(rows)
    if slot is None:
        return False, "the partition table has no app partition"
    if app_bytes > slot:
        return False, "the app (%d B) outgrows its slot (0x%x = %d B) by %d B: freeze less or enlarge the app partition" % (
            app_bytes, slot, slot, app_bytes - slot)
    return True, "app %d B in a slot of %d B (%d B, %.0f%% free)" % (app_bytes, slot, slot - app_bytes, 100.0 * (slot - app_bytes) / slot)


def docker_problem(docker):
    """None when `docker` can run containers, else what is missing, in words."""
    exe = shutil.which(docker)
    if exe is None:
        return ("%s not found: make firmware builds in Espressif's ESP-IDF container and needs Docker "
                "(https://docs.docker.com/engine/install/), or build by hand in an ESP-IDF shell: see docs/deploy.md" % docker)
    try:
        r = subprocess.run([exe, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "%s does not answer (%s)" % (exe, e)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        return ("Docker is installed but its daemon is not usable (%s): start it (systemctl start docker) "
                "or add yourself to the docker group" % (msg[-1] if msg else "exit %d" % r.returncode))
    return None


def fetch_micropython(tag, dest):
    """A checkout of MicroPython at `tag` in dest (cloned once, shallow)."""
    if (dest / "ports" / "esp32" / "Makefile").is_file():
        return dest
    git = shutil.which("git")
    if git is None:
        raise BuildError("git not found: needed once to fetch MicroPython %s into %s" % (tag, dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([git, "clone", "--depth", "1", "--branch", tag, MICROPYTHON_GIT, str(dest)])
    if r.returncode != 0:
        raise BuildError("git clone of MicroPython %s failed (exit %d)" % (tag, r.returncode))
    return dest


def build(name, out, docker="docker"):
    bdir = board_dir(name)
    tc = toolchain()
    tag, idf = tc["MICROPYTHON_VERSION"], tc["IDF_VERSION"]
    why = docker_problem(docker)
    if why:
        raise BuildError(why)
    mp = fetch_micropython(tag, ROOT / "build" / ("micropython-" + tag))
    work = "/vegw/build/firmware/%s/idf" % name
    owner = "%d:%d" % (os.getuid(), os.getgid()) if hasattr(os, "getuid") else ""
    # The IDF image has the cross compilers but no host C compiler, which the
    # port needs for mpy-cross: install it (as root in the container), and
    # give what the build wrote back to you, whatever the outcome.
    script = "\n".join([
        "set -e",
        ("trap 'chown -R %s /vegw/build/firmware /micropython' EXIT" % owner) if owner else ":",
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null",
        "git config --global --add safe.directory '*'",
        "make -C /micropython/mpy-cross",
        "make -C /micropython/ports/esp32 BOARD_DIR=/vegw/boards/%s BUILD=%s submodules" % (name, work),
        "make -C /micropython/ports/esp32 BOARD_DIR=/vegw/boards/%s BUILD=%s" % (name, work),
    ])
    cmd = [shutil.which(docker), "run", "--rm",
           "-v", "%s:/vegw" % ROOT, "-v", "%s:/micropython" % mp,
           "espressif/idf:%s" % idf, "bash", "-c", script]
    sys.stderr.write("vegw firmware: building %s with MicroPython %s in espressif/idf:%s\n" % (name, tag, idf))
    r = subprocess.run(cmd)
    built = ROOT / "build" / "firmware" / name / "idf"
    app = built / "micropython.bin"
    if r.returncode != 0:
        if app.is_file():  # the port's makeimg.py stops there when the app is too big: say it in our words
            ok, line = check_app_size(app.stat().st_size, partitions(bdir / "partitions.csv"))
            if not ok:
                raise BuildError(line)
        raise BuildError("the build of %s failed in the container (exit %d); see the output above" % (name, r.returncode))
    ok, line = check_app_size(app.stat().st_size, partitions(bdir / "partitions.csv"))
    if not ok:
        raise BuildError(line)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    image = out / ("vegw-%s-%s.bin" % (name, tag))
    shutil.copyfile(built / "firmware.bin", image)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    (out / (image.name + ".sha256")).write_text("%s  %s\n" % (digest, image.name))
    sys.stdout.write("%s: %s\n%s  %s\n" % (name, line, digest, image))
    return image


def main(argv=None):
    p = argparse.ArgumentParser(prog="make firmware", description="build a vegw board image in the ESP-IDF container")
    p.add_argument("--board", required=True, help="board name: " + ", ".join(board_names()))
    p.add_argument("--out", default=str(ROOT / "build" / "firmware"), help="where the image and its .sha256 go")
    p.add_argument("--docker", default=os.environ.get("DOCKER", "docker"), help="docker executable (default: $DOCKER or docker)")
    args = p.parse_args(argv)
    try:
        build(args.board, args.out, args.docker)
    except BuildError as e:
        sys.stderr.write("make firmware: %s\n" % e)
        return 2 if "outgrows" not in str(e) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
