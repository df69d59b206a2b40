# Stand-in board, MicroPython side: run by tests/standin/board.py as
#   micropython -i target_boot.py   (stdin/stdout on a pty)
# It makes the unix port look like an ESP32 to mpremote and `vegw deploy`:
# the directory VEGW_STANDIN_ROOT becomes the filesystem root "/", sys.path is
# the ESP32's ('', '.frozen', '/lib'), boot.py and main.py run as at power-on
# or after a soft reset, and then `-i` drops into the unix port's own REPL,
# which speaks the raw REPL (Ctrl-A, Ctrl-D, raw-paste) that mpremote uses.
# A soft reset (Ctrl-D in the raw REPL) ends this process; board.py starts it
# again, printing "MPY: soft reboot" first, as a board does.
#
# Fault injection: VEGW_STANDIN_CUT_AFTER=N makes the board "unplug" itself
# (exit code 77, board.py then closes the pty) once N bytes have been written
# to files, in the middle of a write.
import os
import sys
import vfs

_root = os.getenv("VEGW_STANDIN_ROOT")


class _Root:
    # VfsPosix(root) of the unix port (v1.29-preview) fails rename() when both
    # paths are absolute: both are built in one shared buffer, so the old name
    # is overwritten by the new one (ENOENT). Give it the old name relative to
    # the process's working directory, which is the root.
    def __init__(self, v):
        self.v = v

    def __getattr__(self, name):
        return getattr(self.v, name)

    def rename(self, old, new):
        self.v.rename(old[1:] if old[:1] == "/" else old, new)


vfs.umount("/")
vfs.mount(_Root(vfs.VfsPosix(_root)), "/")
os.chdir("/")
sys.path[:] = ["", ".frozen", "/lib"]

_cut = os.getenv("VEGW_STANDIN_CUT_AFTER")
if _cut:
    _left = [int(_cut)]
    _real_open = open

    class _CutFile:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            n = len(data)
            if n >= _left[0]:
                self.f.write(data[: _left[0]])
                self.f.close()
                sys.exit(77)  # the USB cable is pulled mid-write
            _left[0] -= n
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    def open(path, mode="r", *args):  # noqa: A001 - shadows the builtin for REPL code
        f = _real_open(path, mode, *args)
        return _CutFile(f) if "w" in mode else f


def _run(name):
    try:
        os.stat(name)
    except OSError:
        return
    try:
        with open(name) as f:
            src = f.read()
        exec(src, {"__name__": "__main__"})
    except Exception as e:  # a board prints the traceback and carries on to the REPL
        sys.print_exception(e)


_run("boot.py")
_run("main.py")
