"""Stand-in board for `vegw deploy` tests: the MicroPython unix port behind a
pty, speaking the real raw REPL of the unix port (Ctrl-A raw mode, Ctrl-D
execute, OK/\\x04 framing, raw-paste), with a temp directory as its "/".

    b = StandinBoard(root)          # root: the board's flash (a directory)
    b.start()                       # b.port is the serial device path (/dev/pts/N)
    ... vegw deploy --port b.port ...
    b.stop()

A soft reset ends the micropython process; a watcher thread restarts it on
the same pty after printing "MPY: soft reboot", and the restarted board runs
boot.py and main.py from root, as a real board does. `cut_after=N` unplugs
the board (closes the pty) once N bytes have been written to its files.
Each start() is a new pty, as a board that re-enumerates on USB.
Limitation: a main.py that never returns cannot be interrupted with Ctrl-C
(the pty is in raw mode, so no SIGINT): the stand-in's main.py must return.
"""
import os
import pathlib
import subprocess
import threading
import time
import tty

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CUT_EXIT = 77


def _micropython():
    exe = ROOT / ".venv" / "bin" / "micropython"
    return str(exe) if exe.exists() else "micropython"


class StandinBoard:
    def __init__(self, root, cut_after=None):
        self.root = str(root)
        self.cut_after = cut_after
        self.port = None
        self.unplugged = threading.Event()
        self.boots = 0
        self._master = self._slave = None
        self._proc = None
        self._stopping = False
        self._lock = threading.Lock()
        self._watcher = None

    def start(self):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # a USB-serial line: no echo, no CR/LF mangling
        self.port = os.ttyname(self._slave)
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()
        time.sleep(0.2)  # let the banner out, as a board that just enumerated
        return self

    def _spawn(self):
        env = dict(os.environ)
        env["VEGW_STANDIN_ROOT"] = self.root
        env["MICROPYPATH"] = ".frozen"
        env.pop("VEGW_STANDIN_CUT_AFTER", None)
        if self.cut_after is not None:
            env["VEGW_STANDIN_CUT_AFTER"] = str(self.cut_after)
        self.boots += 1
        self._proc = subprocess.Popen(
            [_micropython(), "-X", "heapsize=2M", "-i", str(HERE / "target_boot.py")],
            stdin=self._master, stdout=self._master, stderr=self._master, env=env, cwd=self.root,
        )

    def _watch(self):
        while True:
            proc = self._proc
            rc = proc.wait()
            with self._lock:
                if self._stopping:
                    return
                if rc == CUT_EXIT:
                    self._unplug()
                    return
                # soft reset (or the program exited): the board reboots
                try:
                    os.write(self._master, b"MPY: soft reboot\r\n")
                except OSError:
                    return
                self._spawn()
                # A board soft-reset from the raw REPL comes back in the raw
                # REPL (mpremote waits for its banner): type Ctrl-A for it.
                try:
                    os.write(self._slave, b"\x01")
                except OSError:
                    return

    def _unplug(self):
        self.unplugged.set()
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None

    def stop(self):
        with self._lock:
            self._stopping = True
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._unplug()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
