# Simulated NOR flash for the host (both runtimes): the block-device contract
# of lib/blockdev.py over a bytearray, or over a file so a "flash image"
# survives between processes.
#
# What it enforces, as a real NOR part does:
#   - prog may only clear bits (1 -> 0). A prog that would set a bit is a
#     violation: counted in .violations and raised as OSError(EIO) (strict)
#     or applied as AND (what real flash does silently) when strict=False.
#   - erase sets a whole block to 0xFF and is counted per block.
# Power cuts: cut_after(n) arms a countdown of n bytes. Prog and erase spend
# one byte per byte touched; when the countdown runs out the operation stops
# mid-way (prog: the first n bytes are programmed; erase: n bytes of the
# block read 0xFF - the first n, or the last n with erase_from_end - and the
# rest keep their old content) and every later
# operation raises OSError(EIO) until reboot() (reads keep working, like a
# CPU that is about to lose power). A cut never half-programs a byte.
from array import array

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_EIO = const(5)
_CHUNK = const(256)  # bytes per step of prog/erase (scratch buffers, no big allocation)


class NorSim:
    def __init__(self, block_count, block_size=4096, path=None, strict=True, erase_from_end=False):
        # erase_from_end: a cut erase leaves the END of the block erased and
        # the start (the sector header) intact - the nastier case for a log.
        self.erase_from_end = erase_from_end
        self.block_size = block_size
        self.block_count = block_count
        self.strict = strict
        self.erases = array("I", bytes(4 * block_count))  # per block, this object's lifetime (u32)
        self.violations = 0
        self.prog_bytes = 0
        self.prog_calls = 0
        self.syncs = 0
        self.powered = True
        self.cuts = 0
        self._countdown = -1  # bytes left before the cut; -1 = not armed
        self._partial = 0  # bits of the interrupted byte that get written (cut_after)
        self._old = bytearray(_CHUNK)  # prog scratch: flash content
        self._new = bytearray(_CHUNK)  # prog scratch: what gets written
        self._ff = b"\xff" * _CHUNK  # erase pattern
        self._size = block_count * block_size
        self._file = None
        self._mem = None
        if path is None:
            self._mem = bytearray(self._size)  # filled in steps: no 2x peak
            ff = b"\xff" * block_size
            for i in range(block_count):
                self._mem[i * block_size : (i + 1) * block_size] = ff
        else:
            try:
                f = open(path, "r+b")
            except OSError:
                f = open(path, "wb")
                chunk = b"\xff" * block_size
                for _ in range(block_count):
                    f.write(chunk)
                f.close()
                f = open(path, "r+b")
            self._file = f

    # --- power
    def cut_after(self, nbytes, partial=0):
        """Lose power after nbytes more programmed/erased bytes (None: never).
        partial: a bit mask; the byte being written when power goes is then
        half done: of the bits the program would clear, those in the mask
        are cleared (an erase sets those in the mask)."""
        self._countdown = -1 if nbytes is None else nbytes
        self._partial = partial & 0xFF

    def reboot(self):
        self.powered = True
        self._countdown = -1

    def _spend(self, n):
        """How many of n bytes may still be touched; cuts power when short."""
        if not self.powered:
            raise OSError(_EIO)
        if self._countdown < 0:
            return n
        if self._countdown >= n:
            self._countdown -= n
            return n
        k = self._countdown
        self._countdown = -1
        self.powered = False
        self.cuts += 1
        return k

    # --- raw storage
    def _get(self, addr, buf):
        if self._mem is not None:
            n = len(buf)
            buf[:] = self._mem[addr : addr + n]
        else:
            self._file.seek(addr)
            self._file.readinto(buf)

    def _put(self, addr, data):
        if self._mem is not None:
            self._mem[addr : addr + len(data)] = data
        else:
            self._file.seek(addr)
            self._file.write(data)

    def _addr(self, block, offset, n):
        if block < 0 or block >= self.block_count or offset < 0 or offset + n > self.block_size:
            raise OSError(22)  # EINVAL: out of range is a caller bug
        return block * self.block_size + offset

    # --- contract
    def read(self, block, offset, buf):
        self._get(self._addr(block, offset, len(buf)), buf)

    def prog(self, block, offset, data):
        # In _CHUNK steps through two preallocated scratch buffers: no
        # allocation of the write's size (a 4 KB block on a fragmented heap).
        n = len(data)
        addr = self._addr(block, offset, n)
        self.prog_calls += 1
        old = self._old
        bad = False
        c = 0
        while c < n and not bad:
            m = min(_CHUNK, n - c)
            self._get(addr + c, memoryview(old)[:m])
            for i in range(m):
                if data[c + i] & ~old[i] & 0xFF:
                    bad = True
                    break
            c += m
        if bad:
            self.violations += 1
            if self.strict:
                raise OSError(_EIO)
        k = self._spend(n)
        new = self._new
        c = 0
        while c < k:
            m = min(_CHUNK, k - c)
            self._get(addr + c, memoryview(old)[:m])
            for i in range(m):
                new[i] = data[c + i] & old[i]
            self._put(addr + c, memoryview(new)[:m])
            c += m
        self.prog_bytes += k
        if k < n:
            if self._partial:
                b = bytearray(1)
                self._get(addr + k, b)
                b[0] &= ~(b[0] & ~data[k] & self._partial) & 0xFF
                self._put(addr + k, b)
            raise OSError(_EIO)

    def erase(self, block):
        addr = self._addr(block, 0, self.block_size)
        k = self._spend(self.block_size)
        if k:
            start = addr + self.block_size - k if self.erase_from_end else addr
            c = 0
            while c < k:
                m = min(_CHUNK, k - c)
                self._put(start + c, memoryview(self._ff)[:m])
                c += m
        self.erases[block] += 1  # an erase that started wears the block
        if k < self.block_size:
            if self._partial:
                b = bytearray(1)
                i = addr + self.block_size - k - 1 if self.erase_from_end else addr + k
                self._get(i, b)
                b[0] |= self._partial
                self._put(i, b)
            raise OSError(_EIO)

    def sync(self):
        if not self.powered:
            raise OSError(_EIO)
        self.syncs += 1
        if self._file is not None:
            self._file.flush()

    # --- test helpers
    def image(self):
        """A copy of the whole flash (tests compare or corrupt it)."""
        buf = bytearray(self._size)
        self._get(0, buf)
        return buf

    def poke(self, block, offset, data):
        """Write bytes without any rule (simulates bit rot in tests)."""
        self._put(self._addr(block, offset, len(data)), data)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
