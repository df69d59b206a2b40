"""The USB link to a board for `vegw deploy`: mpremote's serial transport
(raw REPL, raw-paste) plus the few device-side snippets deploy needs.

mpremote's `SerialTransport` is not a stable API, so it is used only here and
only for connect / enter_raw_repl / exec / close, the part unchanged since
pyboard.py; requirements-dev.txt pins mpremote==1.29.0. Everything else
(hashing, chunked atomic writes, soft reset and watching the console) is our
own code sent over the raw REPL.

Every failure becomes LinkError with one line of text; a board that goes away
mid-operation (USB pulled, pty closed, no answer) gives a message that says
what was being done, so the caller can tell the user to re-run.
"""
import ast
import base64
import time

CHUNK = 1024  # raw bytes per write exec (1.4 KB of base64 source on the device)

ARCHES = ["none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
          "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc"]  # index = arch of sys.implementation._mpy

_INFO = (
    "import sys\n"
    "_i=sys.implementation\n"
    "print(repr((getattr(_i,'_mpy',0),tuple(_i.version),getattr(_i,'_machine',sys.platform),sys.platform)))\n"
)

# sha256 (hex) of each path, None when missing; one line per path so the
# output trickles and the host's per-character timeout never fires.
_HASHES = (
    "import hashlib,binascii\n"
    "def _h(p):\n"
    " try:\n"
    "  f=open(p,'rb')\n"
    " except OSError:\n"
    "  return None\n"
    " h=hashlib.sha256();b=bytearray(512);m=memoryview(b)\n"
    " while 1:\n"
    "  n=f.readinto(b)\n"
    "  if not n:break\n"
    "  h.update(m[:n])\n"
    " f.close()\n"
    " return binascii.hexlify(h.digest()).decode()\n"
    "for _p in %r:\n"
    " print(repr((_p,_h(_p))))\n"
)


class LinkError(Exception):
    pass


def mpy_info(mpy):
    """sys.implementation._mpy -> (major, minor, arch name)."""
    major = mpy & 0xFF
    minor = (mpy >> 8) & 3
    arch_i = (mpy >> 10) & 0x3F
    arch = ARCHES[arch_i] if arch_i < len(ARCHES) else "arch%d" % arch_i
    return major, minor, arch


class DeviceLink:
    def __init__(self, port, baud=115200, soft_reset=False):
        # soft_reset: Ctrl-D once in the raw REPL, a clean heap with boot.py
        # run and main.py not (MicroPython runs main.py only from the friendly REPL)
        self.port = port
        try:
            from mpremote.transport_serial import SerialTransport
            from mpremote.transport import TransportError
        except ImportError as e:
            raise LinkError("mpremote is not installed (pip install mpremote==1.29.0): %s" % e)
        self._TransportError = TransportError
        try:
            self.t = SerialTransport(port, baudrate=baud)
        except Exception as e:  # noqa: BLE001 - pyserial and mpremote raise several kinds
            raise LinkError("cannot open %s: %s" % (port, _short(e)))
        self.doing = "entering the raw REPL"
        # Two Ctrl-C first: an asyncio firmware can need a second one to stop
        # (mpremote sends one). At a prompt they are harmless.
        self._call(self.t.serial.write, b"\r\x03\x03")
        time.sleep(0.1)
        self._call(self.t.enter_raw_repl, soft_reset=soft_reset)

    def _call(self, fn, *a, **kw):
        try:
            return fn(*a, **kw)
        except LinkError:
            raise
        except self._TransportError as e:
            err = getattr(e, "error_output", None)
            if err:
                raise LinkError("device error while %s: %s" % (self.doing, err.strip().splitlines()[-1]))
            raise LinkError("board stopped answering while %s (%s)" % (self.doing, _short(e)))
        except Exception as e:  # noqa: BLE001 - SerialException, OSError(EIO), struct.error on a cut line
            raise LinkError("board disconnected while %s (%s)" % (self.doing, _short(e)))

    def exec(self, code):
        return self._call(self.t.exec, code)

    def run(self, code, doing, timeout=30, on_output=None):
        """Execute code, passing its output to on_output(bytes) as it arrives
        (a long check prints as it goes). timeout: seconds of silence allowed.
        Returns the whole output; a device exception becomes LinkError."""
        self.doing = doing
        out, err = self._call(self.t.exec_raw, code, timeout, on_output)
        if err:
            lines = err.decode(errors="replace").strip().splitlines()
            raise LinkError("device error while %s: %s" % (doing, lines[-1] if lines else "?"))
        return out

    def info(self):
        """-> dict(mpy=(major, minor, arch), version=(1, 24, 0, ...), machine=str, platform=str)."""
        self.doing = "reading sys.implementation"
        out = self.exec(_INFO).decode(errors="replace").strip()
        try:
            mpy, version, machine, platform = ast.literal_eval(out.splitlines()[-1])
        except (ValueError, SyntaxError, IndexError):
            raise LinkError("unexpected answer to sys.implementation: %r" % out[:80])
        return {"mpy": mpy_info(mpy), "mpy_raw": mpy, "version": version, "machine": machine, "platform": platform}

    def hashes(self, paths):
        """{path: sha256 hex or None} for absolute device paths."""
        self.doing = "hashing files on the device"
        out = {}
        paths = list(paths)
        for i in range(0, len(paths), 40):  # keep each snippet small for the device's compiler
            text = self.exec(_HASHES % (paths[i:i + 40],)).decode(errors="replace")
            for line in text.splitlines():
                line = line.strip()
                if not line:
                    continue
                try:
                    p, h = ast.literal_eval(line)
                except (ValueError, SyntaxError):
                    raise LinkError("unexpected hash line from the device: %r" % line[:80])
                out[p] = h
        return out

    def mkdirs(self, dirs):
        self.doing = "creating directories"
        if dirs:
            self.exec("import os\nfor _d in %r:\n try:\n  os.mkdir(_d)\n except OSError:\n  pass\n" % (sorted(dirs),))

    def write(self, path, data, progress=None):
        """Write data to path atomically: into path.part, then rename over path.
        A cut mid-copy leaves path as it was (old content or absent) and a
        stray .part that the next deploy overwrites or removes."""
        self.doing = "writing %s" % path
        tmp = path + ".part"
        self.exec("import binascii\n_f=open(%r,'wb')\n_w=_f.write\n_d=binascii.a2b_base64\n" % tmp)
        done = 0
        for i in range(0, len(data), CHUNK):
            piece = data[i:i + CHUNK]
            self.exec("_w(_d(%r))" % base64.b64encode(piece).decode())
            done += len(piece)
            if progress:
                progress(len(piece))
        self.exec("_f.close()\nimport os\ntry:\n os.remove(%r)\nexcept OSError:\n pass\nos.rename(%r,%r)\n" % (path, tmp, path))

    def remove(self, paths):
        self.doing = "removing stale files"
        if paths:
            self.exec("import os\nfor _p in %r:\n try:\n  os.remove(_p)\n except OSError:\n  pass\n" % (sorted(paths),))

    def soft_reset_and_watch(self, marker, timeout, on_line=None):
        """Ctrl-D in the raw REPL (soft reset), then read the console until a
        line starting with `marker` appears. Returns (line or None, last lines)."""
        self.doing = "soft-resetting the board"
        ser = self.t.serial
        self._call(ser.write, b"\x04")
        buf = b""
        lines = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                n = ser.in_waiting
                chunk = ser.read(n or 1) if n else b""
            except Exception as e:  # noqa: BLE001
                raise LinkError("board disconnected while waiting for its first status (%s)" % _short(e))
            if not chunk:
                time.sleep(0.02)
                continue
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode(errors="replace").strip("\r\x04> ").strip()
                if not line:
                    continue
                lines.append(line)
                del lines[:-8]
                if on_line:
                    on_line(line)
                if line.startswith(marker):
                    return line, lines
        return None, lines

    def close(self):
        try:
            self.t.close()
        except Exception:  # noqa: BLE001 - the port may be gone already
            pass


def _short(e):
    s = str(e).strip().splitlines()
    return (s[-1] if s else type(e).__name__)[:160]
