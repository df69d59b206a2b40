# The filesystem interface of ota_journal.py, ota_rx.py and cfg_push.py over the real `os`
# module: open/size/remove/rename/mkdir/free on paths relative to a root.
# Tests give those modules an in-memory one of the same shape. Below it, the
# file steps both journals take on any such `fs`.
import json


class OsFs:
    """The filesystem interface OtaReceiver and ConfigPush use, over the real `os` module.
    `root` is prefixed to every path ("" on the device: paths are relative to
    the working directory, which is "/" after boot)."""

    def __init__(self, root=""):
        import os

        self._os = os
        self.root = root.rstrip("/") + "/" if root else ""

    def _p(self, path):
        return self.root + path

    def open(self, path, mode):
        return open(self._p(path), mode)

    def size(self, path):
        """Size in bytes, or None when the file does not exist."""
        try:
            return self._os.stat(self._p(path))[6]
        except OSError:
            return None

    def remove(self, path):
        self._os.remove(self._p(path))

    def rename(self, old, new):
        self._os.rename(self._p(old), self._p(new))

    def mkdir(self, path):
        self._os.mkdir(self._p(path))

    def free(self):
        try:
            st = self._os.statvfs(self.root or "/")
            return st[0] * st[4]  # f_bsize * f_bavail (littlefs/FAT: bsize == frsize)
        except (OSError, AttributeError):
            return None


def rm(fs, path):
    """Remove path if it is there (a journal step done twice is harmless)."""
    if fs.size(path) is not None:
        fs.remove(path)


def read_json(fs, path):
    """The dict in path, or None (missing, unreadable, not a dict)."""
    if fs.size(path) is None:
        return None
    try:
        f = fs.open(path, "rb")
        try:
            d = json.loads(f.read())
        finally:
            f.close()
    except (OSError, ValueError, UnicodeError):
        return None
    return d if isinstance(d, dict) else None


def write_json(fs, path, d, tmp=".new"):
    """Write beside, then replace: a cut leaves the old or the new copy."""
    f = fs.open(path + tmp, "wb")
    try:
        f.write(json.dumps(d).encode())
    finally:
        f.close()
    rm(fs, path)
    fs.rename(path + tmp, path)


def load_journal(fs, path, tmp=".new"):
    """A journal written by write_json, also after a cut between its remove
    and rename (then the copy beside takes its place); None if there is none."""
    st = read_json(fs, path)
    if st is not None:
        rm(fs, path + tmp)
        return st
    st = read_json(fs, path + tmp)
    if st is not None:
        fs.rename(path + tmp, path)
    else:
        rm(fs, path + tmp)
    return st


def sha256_hex(fs, path, buf):
    """Hex SHA-256 of a file, read through the caller's buffer."""
    import binascii
    import hashlib

    h = hashlib.sha256()
    mv = memoryview(buf)
    f = fs.open(path, "rb")
    try:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    finally:
        f.close()
    return binascii.hexlify(h.digest()).decode()
