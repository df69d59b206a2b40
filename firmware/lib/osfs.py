# The filesystem interface of ota.py and cfg_push.py over the real `os`
# module: open/size/remove/rename/mkdir/free on paths relative to a root.
# Tests give those modules an in-memory one of the same shape.


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
