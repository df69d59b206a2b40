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
#
# A block is good when its checksum holds AND every line has the protocol's
# form (label 1..8 bytes without spaces or control bytes, value <= 32 bytes,
# known numeric labels numeric, <= 22 fields, no label twice): a cut-off
# block merged with the next passes the 8-bit checksum 1 time in 256. After
# a bad block the next block is looked for inside it, at the lines whose
# label opened a good block before (learned; PID and H1 to start with);
# until 4 good blocks have passed, at the latest line start whose suffix
# verifies with known labels only. Counters: checksum_errors, malformed
# (dup_labels of them), overflows, resynced. Memory: _buf, _hex and the
# field table are allocated once; no path grows them.

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
# Line syntax (VE.Direct Protocol 3.29 p.4 and p.12: label buffer 9 bytes,
# value buffer 33 bytes, at most 22 fields per block). A block is good only
# if its checksum holds AND every line has this form: a cut-off block merged
# with the next one passes the 8-bit checksum 1 time in 256.
_MAX_DATA_FIELDS = const(22)  # data fields per block (Checksum not counted)
_MAX_LABEL = const(8)  # label bytes (protocol: 8 + NUL)
_MAX_VALUE = const(32)  # value bytes (protocol: 32 + NUL)
_NO_ENTRY = const(255)  # Block._ent for an unknown label
_MAX_FIRST = const(6)  # block-opening labels remembered for resync
_LEARN_BLOCKS = const(4)  # good blocks before resync trusts learned labels only

_ST_SYNC = const(0)  # discarding until the first \r\n (start-up, after an error)
_ST_TEXT = const(1)  # inside a block
_ST_HEX = const(2)  # inside a HEX frame
_ST_HEX_SKIP = const(3)  # HEX frame too long: discard to its '\n'

# _split() results other than a field count
_BAD_LINE = const(-4)  # a line breaks the syntax (-1: _line_ok's unknown label)
_BAD_DUP = const(-2)  # a label twice: two blocks ran together
_BAD_SUM = const(-3)  # checksum does not hold

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
        self._ent = ent  # per field: index into vedirect_fields.NAMES, 255 = unknown
        self._offs = offs  # 3 unsigned shorts per field: label start, tab, value end
        self.count = 0  # number of fields, Checksum excluded
        self.length = 0  # bytes in the block, checksum byte included

    def label(self, i):
        """The label as str; bytes outside printable ASCII as \\xNN (a label
        with such bytes still comes through: never UnicodeError)."""
        o = self._offs
        out = ""
        for c in self._buf[o[3 * i] : o[3 * i + 1]]:
            out += chr(c) if 32 < c < 127 else "\\x%02x" % c
        return out

    def value(self, i):
        """Raw value bytes (allocates)."""
        o = self._offs
        return bytes(self._buf[o[3 * i + 1] + 1 : o[3 * i + 2]])

    def entry(self, i):
        """Index into vedirect_fields.NAMES of field i's label, or -1 (looked
        up once, while the block was checked)."""
        k = self._ent[i]
        return -1 if k == _NO_ENTRY else k

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
        self._ent = bytearray(_MAX_FIELDS)
        self._seen = bytearray(len(_VF.NAMES))  # known labels met in the block being split
        self._block = Block(self._buf, self._offs, self._ent)
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
        self.dup_labels = 0  # of malformed: a label twice (two blocks merged)
        # labels that opened good blocks (resync candidates), seeded with
        # the two the protocol's devices are known to start with
        self._first = bytearray(_MAX_FIRST * _MAX_LABEL)
        self._first_len = bytearray(_MAX_FIRST)
        self._first[0:3] = b"PID"
        self._first[_MAX_LABEL : _MAX_LABEL + 2] = b"H1"
        self._first_len[0] = 3
        self._first_len[1] = 2
        self._first_next = 2

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
            if end + m > len(buf):
                # cannot happen (_scan keeps _n <= _MAX_BLOCK); never let a
                # slice assignment grow the buffer under its memoryview
                self.overflows += 1
                self._st = _ST_SYNC
                self._n = end = 0
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
            "dup_labels": self.dup_labels,
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
                    # a \r right before the frame may pair with a \n after it
                    # (HEX frame between \r and \n at a block start): keep it
                    keep = 1 if h > 0 and buf[h - 1] == _CR else 0
                    end = self._remove(0, h - keep, end)
                    if keep:
                        buf[0] = _CR
                    p = keep
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
                # HEX frame inside the block: text before it stays, unless
                # the block is already too long (fixed memory on every path)
                if h > _MAX_BLOCK:
                    self.overflows += 1
                    end = self._remove(0, h, end)
                    h = 0
                    self._resume = _ST_SYNC
                else:
                    self._resume = _ST_TEXT
                p = h
                self._st = _ST_HEX
                continue
            if csb < end:
                good = self._block_done(csb + 1)
                if not good and buf[csb] == _CR:
                    # a byte lost in this block made the next block's \r
                    # its "checksum": leave it for the next block's \r\n
                    end = self._remove(0, csb, end)
                    p = 1
                else:
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
        mv = self._mv
        total = sum(mv[:length]) & 0xFF
        count = self._split(0, length) if not total else _BAD_SUM
        if count < 0:
            if count == _BAD_SUM:
                self.checksum_errors += 1
            else:
                self.malformed += 1
                if count == _BAD_DUP:
                    self.dup_labels += 1
            # A cut-off block (lost bytes, lost "Checksum" line) runs into
            # the next one. Look for the next block at the lines whose label
            # opened a good block before (learned per parser: PID, H1, ERR
            # on split MPPT blocks, ...): any line start would verify by
            # chance 1 time in 256 per line and hand out a block's tail.
            s = 2
            acc = total  # sum of buf[0:s] is total - sum(buf[s:length])
            run = 0  # sum of buf[0:s]
            last = 0
            late = -1
            stop = length - _CS_LEN
            while True:
                s = buf.find(b"\r\n", s, stop)
                if s < 0:
                    if late < 0:
                        return False
                    s = late
                    break
                run += sum(mv[last:s])
                last = s
                if not (acc - run) & 0xFF:
                    # a rescued suffix is trusted only if every label in it
                    # is known: a flipped bit in a label reads as unknown
                    if self._is_first(s + 2):
                        if self._all_known(self._split(s, length)):
                            break
                    elif self.blocks_ok < _LEARN_BLOCKS and self._all_known(self._split(s, length)):
                        # nothing learned yet (start-up): the latest suffix
                        # that verifies and parses is the next block
                        late = s
                s += 2
            self.resynced += 1
            buf[0 : length - s] = mv[s:length]
            length -= s
            count = self._split(0, length)
        self._learn_first()
        blk = self._block
        blk.count = count
        blk.length = length
        self.blocks_ok += 1
        try:
            self.on_block(blk)
        except Exception:  # a consumer bug must not stop the parser
            self.callback_errors += 1
        return True

    def _all_known(self, count):
        # at least 2 fields (as _split left them in _offs), all labels known
        if count < 2:
            return False
        ent = self._ent
        for i in range(count):
            if ent[i] == _NO_ENTRY:
                return False
        return True

    def _learn_first(self):
        # remember the label that opened this good block (a few, round robin)
        offs = self._offs
        s = offs[0]
        n = offs[1] - s
        if self._is_first(s):
            return
        k = self._first_next
        self._first_next = (k + 1) % _MAX_FIRST
        base = k * _MAX_LABEL
        self._first[base : base + n] = self._mv[s : s + n]
        self._first_len[k] = n

    def _is_first(self, s):
        """Is the label at buf[s] (up to its \t) one that opened a block?"""
        buf = self._buf
        t = buf.find(b"\t", s, s + _MAX_LABEL + 1)
        if t < 0:
            return False
        n = t - s
        first = self._first
        for k in range(_MAX_FIRST):
            if self._first_len[k] == n:
                base = k * _MAX_LABEL
                m = 0
                while m < n and first[base + m] == buf[s + m]:
                    m += 1
                if m == n:
                    return True
        return False

    def _split(self, start, length):
        """Split buf[start:length] (a block whose sum is 0) into fields in
        _offs; the field count, or _BAD_LINE / _BAD_DUP if a line breaks the
        syntax. Each field starts with \r\n; the label ends at the first
        \t (values may hold spaces, '/', '#')."""
        buf = self._buf
        offs = self._offs
        ent = self._ent
        seen = self._seen
        count = 0
        r = 0
        s = start + 2
        stop = length - _CS_LEN - 1  # index of "\r\nChecksum"
        while s < stop:
            nxt = buf.find(b"\r\n", s, stop)
            if nxt < 0:
                nxt = stop
            t = buf.find(b"\t", s, nxt)
            if t <= s or count >= _MAX_DATA_FIELDS:
                r = _BAD_LINE
                break
            k = _line_ok(buf, s, t, nxt)
            if k == _BAD_LINE:
                r = _BAD_LINE
                break
            # one field per label in a block: a repeat means two blocks ran
            # together (known labels: a flag each; unknown ones compared)
            if k >= 0:
                if seen[k]:
                    r = _BAD_DUP
                    break
                seen[k] = 1
                ent[count] = k
            else:
                ent[count] = _NO_ENTRY
                n = t - s
                j = 0
                while j < count:
                    a = offs[3 * j]
                    if ent[j] == _NO_ENTRY and offs[3 * j + 1] - a == n:
                        m = 0
                        while m < n and buf[a + m] == buf[s + m]:
                            m += 1
                        if m == n:
                            r = _BAD_DUP
                            break
                    j += 1
                if r:
                    break
            offs[3 * count] = s
            offs[3 * count + 1] = t
            offs[3 * count + 2] = nxt
            count += 1
            s = nxt + 2
        i = 0
        while i < count:  # clear only the flags this block set
            if ent[i] != _NO_ENTRY:
                seen[ent[i]] = 0
            i += 1
        if r:
            return r
        if s != stop + 2 or not count:
            return _BAD_LINE  # an empty line, or no field at all
        return count

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




def _line_ok(buf, s, t, e):
    """Label buf[s:t] and value buf[t+1:e] have the protocol's form: label
    1..8 bytes, no control bytes or spaces; value at most 32 bytes, no
    control bytes (TAB allowed); known labels' values in their kind's form
    (numbers numeric and at most 10 digits, ON/OFF, 0x-hex, text printable
    and not empty). Returns the label's index in vedirect_fields.NAMES, -1
    for a good line with an unknown label, _BAD_LINE otherwise. Allocates
    nothing."""
    n = t - s
    if n > _MAX_LABEL:
        return _BAD_LINE
    i = s
    while i < t:
        c = buf[i]
        if c <= 32 or c == 127:
            return _BAD_LINE
        i += 1
    v = t + 1
    if e - v > _MAX_VALUE:
        return _BAD_LINE
    k = _VF.lookup(buf, s, n)
    if k < 0:
        i = v
        while i < e:
            c = buf[i]
            if (c < 32 and c != 9) or c == 127:
                return _BAD_LINE
            i += 1
        return -1
    return k if _VF.value_ok(k, buf, v, e) else _BAD_LINE


import vedirect_fields as _VF  # noqa: E402  (the label table; resident anyway)


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
