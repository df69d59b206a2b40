# Small named blobs that must survive a reboot (derived metrics): one file
# per name in a folder, replaced atomically (write name.tmp, then rename), so
# a power cut leaves the old or the new copy, never half of one.
import os


class FileStore:
    def __init__(self, folder):
        self.folder = folder
        try:
            os.mkdir(folder)
        except OSError:
            pass  # exists

    def _path(self, name):
        return self.folder + "/" + name

    def save(self, name, data):
        """data: bytes, or a list of bytes pieces written one after another
        (no large contiguous copy on a fragmented heap)."""
        tmp = self._path(name) + ".tmp"
        with open(tmp, "wb") as f:
            if isinstance(data, (bytes, bytearray)):
                f.write(data)
            else:
                for piece in data:
                    f.write(piece)
        os.rename(tmp, self._path(name))

    def load(self, name):
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except OSError:
            return None
