# VE.Direct text-protocol parser: streaming, fixed memory, never raises.
#
# Wire format (VE.Direct Protocol 3.29, p.4): a block is a run of fields
#   \r\n LABEL \t VALUE  ...  \r\n Checksum \t <one raw byte>
# and every byte from the block's leading \r\n through the checksum byte sums
# to 0 mod 256. The checksum byte may be any value (\t, \r, \n, ':' ...), so it
# is taken unconditionally after "Checksum\t". Asynchronous HEX frames
# (':' .. '\n') may sit between or inside blocks; they are cut out of the text
# stream (they are not part of the text checksum), checked on their own and
# handed to on_hex.
#
# Memory: one bytearray holds the block being received plus the bytes of the
# chunk being scanned:
#
#   _buf: | block so far (text only) | newly fed bytes, not yet scanned |
#         0                          _n                               _end
#
# Bytes are copied in, scanned with bytearray.find (C speed), HEX frames are
# moved out to _hex, and a completed block is verified and split into fields
# in place: the Block handed to on_block is a view of _buf with the field
# offsets in a preallocated array. It is valid only during the callback.

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from array import array

_MAX_BLOCK = const(600)  # text bytes in one block; real blocks are < 300
_MAX_FEED = const(256)  # bytes copied in per scan step
_MAX_FIELDS = const(32)  # fields per block; the protocol allows 22 + Checksum
_MAX_HEX = const(160)  # one HEX frame ':'..'\n'; longest seen is 113 chars

_ST_SYNC = const(0)  # discarding until the first \r\n (start-up, after an error)
_ST_TEXT = const(1)  # inside a block
_ST_HEX = const(2)  # inside a HEX frame
_ST_HEX_SKIP = const(3)  # HEX frame too long: discard to its '\n'

_CR = const(13)
_LF = const(10)
_TAB = const(9)
_COLON = const(58)
_CS_LABEL = b"\r\nChecksum\t"
_CS_LEN = const(11)


class Block:
    """A verified block: field i has its label at _buf[ls:le] and its value at
    _buf[le+1:ve]. Use the accessors; the view is reused for the next block."""

    def __init__(self, buf, offs):
        self._buf = buf
        self._offs = offs  # 3 unsigned shorts per field: label start, tab, value end
        self.count = 0  # number of fields, Checksum excluded
        self.length = 0  # bytes in the block, checksum byte included

    def label(self, i):
        o = self._offs
        return bytes(self._buf[o[3 * i] : o[3 * i + 1]]).decode()

    def value(self, i):
        """Raw value bytes (allocates)."""
        o = self._offs
        return bytes(self._buf[o[3 * i + 1] + 1 : o[3 * i + 2]])

    def label_is(self, i, name):
        """True if field i's label is `name` (bytes); no allocation."""
        o = self._offs
        s = o[3 * i]
        return o[3 * i + 1] - s == len(name) and self._buf.find(name, s, s + len(name)) == s

    def label_span(self, i):
        o = self._offs
        return o[3 * i], o[3 * i + 1]

    def value_span(self, i):
        o = self._offs
        return o[3 * i + 1] + 1, o[3 * i + 2]

    def find(self, name):
        """Index of the field labelled `name` (bytes), or -1."""
        for i in range(self.count):
            if self.label_is(i, name):
                return i
        return -1

    def items(self):
        """(label str, value bytes) pairs (allocates; for host tools)."""
        return [(self.label(i), self.value(i)) for i in range(self.count)]

    def raw(self):
        """The block's bytes as received, HEX frames removed (allocates)."""
        return bytes(self._buf[: self.length])


class HexFrame:
    """A HEX frame whose check byte holds: _buf[0:length] is ':' .. '\\n'."""

    def __init__(self, buf):
        self._buf = buf
        self.length = 0

    def raw(self):
        return bytes(self._buf[: self.length])


class Parser:
    def __init__(self, on_block, on_hex=None):
        self.on_block = on_block
        self.on_hex = on_hex
        self._buf = bytearray(_MAX_BLOCK + _MAX_FEED)
        self._mv = memoryview(self._buf)
        self._hex = bytearray(_MAX_HEX)
        self._hexv = HexFrame(self._hex)
        self._hn = 0
        self._offs = array("H", bytes(6 * _MAX_FIELDS))
        self._block = Block(self._buf, self._offs)
        self._st = _ST_SYNC
        self._resume = _ST_SYNC  # state to return to after a HEX frame
        self._n = 0  # bytes kept in _buf between feeds
        # Counters (monotonic; never reset by the parser)
        self.blocks_ok = 0
        self.checksum_errors = 0
        self.malformed = 0  # checksum held but not label\tvalue lines
        self.overflows = 0  # block or field table too large: block dropped
        self.hex_ok = 0
        self.hex_bad = 0
        self.bytes_in = 0
        self.callback_errors = 0
        self.resynced = 0  # blocks recovered from a merged pair

    # -- public -------------------------------------------------------------

    def feed(self, data, length=-1):
        """Feed bytes, bytearray or memoryview; `length` limits how many bytes
        of `data` are used (a UART reader passes its buffer without slicing).
        Never raises."""
        n = len(data) if length < 0 else length
        self.bytes_in += n
        buf = self._buf
        i = 0
        while i < n:
            end = self._n
            m = n - i
            if m > _MAX_FEED:
                m = _MAX_FEED
            if m == n and length < 0:
                buf[end : end + m] = data  # common case: no slice object
            else:
                if not isinstance(data, memoryview):
                    data = memoryview(data)
                buf[end : end + m] = data[i : i + m]
            i += m
            self._scan(end, end + m)

    def reset(self):
        """Forget a half-received block or HEX frame (call after a silent gap
        on the line: a device reboot or a cable pulled mid-block)."""
        self._st = _ST_SYNC
        self._n = 0
        self._hn = 0

    def counters(self):
        return {
            "blocks_ok": self.blocks_ok,
            "checksum_errors": self.checksum_errors,
            "malformed": self.malformed,
            "overflows": self.overflows,
            "hex_ok": self.hex_ok,
            "hex_bad": self.hex_bad,
            "bytes_in": self.bytes_in,
            "resynced": self.resynced,
        }

    # -- scanning -----------------------------------------------------------

    def _remove(self, a, b, end):
        # Drop _buf[a:b] by moving _buf[b:end] down; returns the new end.
        if a < b < end:
            self._buf[a : a + end - b] = self._mv[b:end]
        return end - (b - a)

    def _scan(self, p, end):
        # Scan the new bytes _buf[p:end]. In TEXT state _buf[0:p] is the block
        # received so far; in the other states _buf[0:p] holds nothing useful
        # except a trailing \r kept by SYNC.
        buf = self._buf
        while p < end:
            st = self._st
            if st >= _ST_HEX:
                e = buf.find(b"\n", p, end)
                stop = end if e < 0 else e + 1
                r = buf.find(b"\r", p, stop)
                if r >= 0:
                    # A HEX frame never holds \r: the frame was cut short
                    # (lost '\n', line noise) and text resumes here.
                    self.hex_bad += 1
                    self._hn = 0
                    end = self._remove(p, r, end)
                    self._st = self._resume
                    continue
                if st == _ST_HEX:
                    k = stop - p
                    if self._hn + k <= _MAX_HEX:
                        self._hex[self._hn : self._hn + k] = self._mv[p:stop]
                        self._hn += k
                    else:
                        self._st = st = _ST_HEX_SKIP
                end = self._remove(p, stop, end)
                if e >= 0:
                    if st == _ST_HEX:
                        self._hex_done()
                    else:
                        self.hex_bad += 1
                    self._hn = 0
                    self._st = self._resume
                continue
            if st == _ST_SYNC:
                k = buf.find(b"\r\n", p - 1 if p > 0 else 0, end)
                h = buf.find(b":", p, end)
                if h >= 0 and (k < 0 or h < k):
                    end = self._remove(0, h, end)
                    p = 0
                    self._st = _ST_HEX
                    self._resume = _ST_SYNC
                    continue
                if k < 0:
                    # keep a trailing \r: it may pair with the next \n
                    if buf[end - 1] == _CR:
                        buf[0] = _CR
                        self._n = 1
                    else:
                        self._n = 0
                    return
                end = self._remove(0, k, end)
                self._st = _ST_TEXT
                p = 2
                continue
            # TEXT
            c = buf.find(_CS_LABEL, p - _CS_LEN if p > _CS_LEN else 0, end)
            csb = c + _CS_LEN if c >= 0 else end + 1  # index of the checksum byte
            h = buf.find(b":", p, end)
            if h >= 0 and h < csb:
                # HEX frame inside the block: text before it stays
                p = h
                self._st = _ST_HEX
                self._resume = _ST_TEXT
                continue
            if csb < end:
                self._block_done(csb + 1)
                end = self._remove(0, csb + 1, end)
                p = 0
                self._st = _ST_SYNC
                continue
            if end > _MAX_BLOCK:
                # No Checksum within the maximum: drop, keep the last byte
                self.overflows += 1
                end = self._remove(0, end - 1, end)
                p = 1
                self._st = _ST_SYNC
                continue
            p = end
        self._n = end

    # -- completed units ------------------------------------------------------

    def _block_done(self, length):
        buf = self._buf
        if sum(self._mv[:length]) & 0xFF:
            self.checksum_errors += 1
            # A lost "Checksum" line merges a block with the next one. Blocks
            # start with PID (main) or H1 (BMV history): if one of those
            # starts a suffix that verifies, that suffix is the next block.
            s = _resync_start(buf, self._mv, length)
            if s <= 0:
                return
            self.resynced += 1
            self._buf[0 : length - s] = self._mv[s:length]
            length -= s
        # Split into fields: each starts with \r\n; the label ends at the
        # first \t (values may hold spaces, '/', '#').
        offs = self._offs
        count = 0
        s = 2
        stop = length - _CS_LEN - 1  # index of "\r\nChecksum"
        while s < stop:
            nxt = buf.find(b"\r\n", s, stop)
            if nxt < 0:
                nxt = stop
            t = buf.find(b"\t", s, nxt)
            if t <= s:
                self.malformed += 1
                return
            if count >= _MAX_FIELDS:
                self.overflows += 1
                return
            offs[3 * count] = s
            offs[3 * count + 1] = t
            offs[3 * count + 2] = nxt
            count += 1
            s = nxt + 2
        blk = self._block
        blk.count = count
        blk.length = length
        self.blocks_ok += 1
        try:
            self.on_block(blk)
        except Exception:  # a consumer bug must not stop the parser
            self.callback_errors += 1

    def _hex_done(self):
        frame = self._hexv
        frame.length = self._hn
        if check_hex(self._hex, frame.length):
            self.hex_ok += 1
            if self.on_hex is not None:
                try:
                    self.on_hex(frame)
                except Exception:
                    self.callback_errors += 1
        else:
            self.hex_bad += 1


def _resync_start(buf, mv, length):
    for head in (b"\r\nPID\t", b"\r\nH1\t"):
        s = buf.find(head, 2, length)
        if s > 0 and not sum(mv[s:length]) & 0xFF:
            return s
    return -1


def _nibble(c):
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    return -1


def check_hex(buf, length):
    """True if buf[0:length] is ':' + command nibble + hex byte pairs + '\\n'
    whose nibble + bytes + check byte sum to 0x55 (HEX protocol s.1)."""
    if length < 4 or buf[0] != _COLON or buf[length - 1] != _LF:
        return False
    cmd = _nibble(buf[1])
    if cmd < 0 or (length - 3) & 1:
        return False
    total = cmd
    i = 2
    while i < length - 1:
        hi = _nibble(buf[i])
        lo = _nibble(buf[i + 1])
        if hi < 0 or lo < 0:
            return False
        total += (hi << 4) | lo
        i += 2
    return total & 0xFF == 0x55
