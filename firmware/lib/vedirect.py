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

import vedirect_fields as _VF

_MAX_BLOCK = const(600)  # text bytes in one block; real blocks are < 300
_MAX_FEED = const(256)  # bytes copied in per scan step
_MAX_FIELDS = const(32)  # fields per block; the protocol allows 22 + Checksum
_MAX_HEX = const(160)  # one HEX frame ':'..'\n'; longest seen is 113 chars
_MAX_LABEL = const(15)  # label bytes; the protocol's buffer is 9 (8 + NUL)
_MAX_VALUE = const(32)  # value bytes; the protocol's buffer is 33 (32 + NUL)
_NO_ENTRY = const(255)  # Block._ent for a label not in vedirect_fields

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

    def __init__(self, buf, offs, ent):
        self._buf = buf
        self._offs = offs  # 3 unsigned shorts per field: label start, tab, value end
        self._ent = ent  # per field: index into vedirect_fields.NAMES, or 255
        self.count = 0  # number of fields, Checksum excluded
        self.start = 0  # offset of the block's leading \r\n in _buf
        self.length = 0  # bytes in the block, checksum byte included

    def entry(self, i):
        """Index into vedirect_fields.NAMES of field i's label, or -1."""
        k = self._ent[i]
        return -1 if k == _NO_ENTRY else k

    def label(self, i):
        o = self._offs
        # the parser admits printable ASCII labels only: decode cannot fail
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
        return bytes(self._buf[self.start : self.start + self.length])


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
        self._ent = bytearray(_MAX_FIELDS)
        self._seen = bytearray(len(_VF.NAMES))  # duplicate-label check, cleared per block
        self._block = Block(self._buf, self._offs, self._ent)
        self._st = _ST_SYNC
        self._resume = _ST_SYNC  # state to return to after a HEX frame
        self._n = 0  # bytes kept in _buf between feeds
        # Counters (monotonic; never reset by the parser)
        self.blocks_ok = 0
        self.checksum_errors = 0
        self.malformed = 0  # checksum held but a line or value is not well formed
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
            "callback_errors": self.callback_errors,
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
                    # keep a \r right before the frame: the frame may sit
                    # between the \r and the \n that open the next block
                    if h > 0 and buf[h - 1] == _CR:
                        buf[0] = _CR
                        end = self._remove(1, h, end)
                        p = 1
                    else:
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
        if end > _MAX_BLOCK:
            # Text kept while a HEX frame is open skips the check above: the
            # block may not outgrow its bound on this path either, or the
            # next feed would write past the buffer.
            self.overflows += 1
            end = 0
            if self._st == _ST_TEXT:
                self._st = _ST_SYNC
            else:
                self._resume = _ST_SYNC
        self._n = end

    # -- completed units ------------------------------------------------------

    def _block_done(self, length):
        mv = self._mv
        start = 0
        if sum(mv[:length]) & 0xFF:
            self.checksum_errors += 1
            # A lost "Checksum" line (bytes dropped on the line) merges the
            # rest of a block with the next one. The next block starts at one
            # of the line starts (any line may open a block: MPPT firmware
            # 3.x opens its second block with ERR). The rest of the cut block
            # ends in a line cut short, which a suffix that starts before the
            # next block would carry: the LATEST suffix that verifies and is
            # well formed is taken. A later one verifying by chance (1/256 a
            # line) drops some real fields; an earlier one would publish a
            # truncated value.
            start = self._rescue(length)
            if start < 0:
                return
            self.resynced += 1
        r = self._split(start, length)
        if r:
            if r == 2:
                self.overflows += 1
            else:
                self.malformed += 1
            return
        blk = self._block
        blk.start = start
        blk.length = length - start
        self.blocks_ok += 1
        try:
            self.on_block(blk)
        except Exception:  # a consumer bug must not stop the parser
            self.callback_errors += 1

    def _rescue(self, length):
        # Offset of the latest line start s > 0 whose suffix _buf[s:length]
        # sums to 0 mod 256 and splits into at least two well-formed fields
        # (split again, so the field table holds it); -1 if none. Prefix sums
        # are carried along: one pass over the bytes.
        buf = self._buf
        mv = self._mv
        total = sum(mv[:length])
        stop = length - _CS_LEN - 1
        acc = 0
        last = 0
        best = -1
        s = buf.find(b"\r\n", 2, stop)
        while s > 0:
            acc += sum(mv[last:s])
            last = s
            if not (total - acc) & 0xFF and self._split(s, length) == 0 and self._known(2):
                best = s
            s = buf.find(b"\r\n", s + 2, stop)
        if best > 0:
            self._split(best, length)
        return best

    def _known(self, least):
        # The field table holds at least `least` fields, all with known
        # labels: a rescued suffix is trusted only then (a flipped bit in a
        # label reads as an unknown label).
        n = self._block.count
        if n < least:
            return False
        ent = self._ent
        i = 0
        while i < n:
            if ent[i] == _NO_ENTRY:
                return False
            i += 1
        return True

    def _split(self, start, length):
        # Split _buf[start:length] into fields (each opens with \r\n; the label
        # ends at the first \t, the value may hold more). 0 if every line is
        # well formed, 1 if one is not, 2 if there are too many fields.
        # Well formed: a printable ASCII label of 1.._MAX_LABEL bytes seen once
        # in the block, a value of printable ASCII (and \t) of at most
        # _MAX_VALUE bytes, and for a known label a value of its form
        # (digits for numbers, ON/OFF, 0x.. ...): a line cut short by lost
        # bytes then fails here even when the checksum happens to hold.
        buf = self._buf
        offs = self._offs
        ent = self._ent
        seen = self._seen
        count = 0
        s = start + 2
        stop = length - _CS_LEN - 1  # index of "\r\nChecksum"
        r = 0
        while s < stop:
            nxt = buf.find(b"\r\n", s, stop)
            if nxt < 0:
                nxt = stop
            t = buf.find(b"\t", s, nxt)
            if t <= s or t - s > _MAX_LABEL or nxt - t - 1 > _MAX_VALUE:
                r = 1
                break
            if count >= _MAX_FIELDS:
                r = 2
                break
            j = s
            while j < nxt:
                c = buf[j]
                if c > 126 or (c < 32 and (c != 9 or j < t)) or (c == 32 and j < t):
                    break
                j += 1
            if j < nxt:
                r = 1
                break
            offs[3 * count] = s
            offs[3 * count + 1] = t
            offs[3 * count + 2] = nxt
            k = _VF.entry(self._block, count)
            if k >= 0:
                if seen[k] or not _VF.value_ok(buf, t + 1, nxt, k):
                    r = 1
                    break
                seen[k] = 1
                ent[count] = k
            else:
                ent[count] = _NO_ENTRY
            count += 1
            s = nxt + 2
        i = 0
        while i < count:  # clear only what this block set
            if ent[i] != _NO_ENTRY:
                seen[ent[i]] = 0
            i += 1
        if r:
            return r
        self._block.count = count
        return 0

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
