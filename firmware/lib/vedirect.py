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
# (dup_labels of them), overflows, resynced. Memory: _buf and _hex are
# allocated once per parser, the field table once for all parsers (split
# and handed out in one synchronous call: a callback must not feed another
# parser); no path grows them.
#
# Length: the parser's state machine around its kernel (vedirect_kernel.py) and
# the rescue of merged blocks; a quarter of it is the wire format and the
# rules it enforces.

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from array import array

_MAX_BLOCK = const(600)  # text bytes in one block; real blocks are < 300
_MAX_FEED = const(128)  # bytes copied in per scan step (the app reads 128 at a time)
_MAX_FIELDS = const(22)  # fields per block the kernel splits (the protocol: 22 + Checksum)
_MAX_HEX = const(160)  # one HEX frame ':'..'\n'; longest seen is 113 chars
# Line syntax (VE.Direct Protocol 3.29 p.4 and p.12: label buffer 9 bytes,
# value buffer 33 bytes, at most 22 fields per block) is checked by the
# kernel (vedirect_kernel.split). A block is good only if its checksum holds
# AND every line has this form: a cut-off block merged with the next one
# passes the 8-bit checksum 1 time in 256.
_MAX_LABEL = const(8)  # label bytes (protocol: 8 + NUL)
_NO_ENTRY = const(255)  # Block._ent for an unknown label
_MAX_FIRST = const(6)  # block-opening labels remembered for resync
_LEARN_BLOCKS = const(4)  # good blocks before resync trusts learned labels only

# The scan state lives in one array('i') shared with the kernel; these
# mirror vedirect_kernel's _SV_*, _S_* and _EV_* (a private const costs no
# name in RAM; tests/shared/test_vedirect_kernel.py checks they agree).
_SV_STATE = const(0)
_SV_P = const(2)
_SV_END = const(3)
_SV_HEXLEN = const(4)
_SV_BYTES_LO = const(5)
_SV_HEX_BAD = const(6)
_SV_OVERFLOWS = const(7)
_SV_MAX_BLOCK = const(8)
_SV_CAP = const(10)
_SV_MAX_HEX = const(11)
_SV_BYTES_HI = const(12)
_SV_HEX_OK = const(13)
_SV_WANT_HEX = const(14)
_SV_BLOCKS = const(15)
_SV_SIZE = const(16)
_S_SYNC = const(0)
_EV_MORE = const(0)

# _split() results other than a field count
_BAD_LINE = const(-4)  # a line breaks the syntax (vedirect_kernel._BAD_LINE)
_BAD_DUP = const(-2)  # a label twice: two blocks ran together (vedirect_kernel._BAD_DUP)
_BAD_SUM = const(-3)  # checksum does not hold

_CR = const(13)
_CS_LEN = const(11)


_scratch = []  # offs, ent, st, vals, seen, todo (Parser.__init__)


class Block:
    """A verified block: field i has its label at _buf[ls:le] and its value at
    _buf[le+1:ve]. Use the accessors; the view is reused for the next block."""

    def __init__(self, buf, offs, ent, st, vals, todo):
        self._buf = buf
        self._ent = ent  # per field: index into vedirect_fields.NAMES, 255 = unknown
        self._offs = offs  # 3 unsigned shorts per field: label start, tab, value end
        self._st = st  # per field: how the kernel parsed the value (vedirect_kernel.ST_*)
        self._vals = vals  # per field: the number, where _st says ST_INT
        self._cache = _VF.cache(todo)  # what update() last stored (vedirect_fields)
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
        self._on_hex = None
        self._buf = bytearray(_MAX_BLOCK + _MAX_FEED)
        self._hex = bytearray(_MAX_HEX)
        self._hexv = None  # the HexFrame view on_hex gets (made with the first one)
        # A block's fields, split in place: scratch that every parser uses in
        # turn (a block is split, handed out and stored in one synchronous
        # call: ~600 B per parser not held; the Block is valid only during
        # its callback anyway). Made with the first parser.
        if not _scratch:
            _scratch.extend((array("H", bytes(6 * _MAX_FIELDS)), bytearray(_MAX_FIELDS), bytearray(_MAX_FIELDS),
                             array("i", bytes(4 * _MAX_FIELDS)), bytearray(len(_VF.NAMES)), bytearray(_MAX_FIELDS)))
        self._offs, self._ent, self._st, self._vals, self._seen, todo = _scratch
        # _seen: known labels met in the block being split; todo: fields left to update()
        self._tab = _VF.TABLE  # the label table split() reads
        self._block = Block(self._buf, self._offs, self._ent, self._st, self._vals, todo)
        self._state = array("i", bytes(4 * _SV_SIZE))  # scan state (vedirect_kernel.feed)
        self._state[_SV_MAX_BLOCK] = _MAX_BLOCK
        self._state[_SV_CAP] = len(self._buf)
        self._state[_SV_MAX_HEX] = _MAX_HEX
        self.on_hex = on_hex
        self._done = self._block_done  # bound once: the kernel calls it per block
        # Counters (monotonic; never reset by the parser); blocks_ok,
        # bytes_in and the HEX and overflow counters are the kernel's
        # (properties below)
        self.checksum_errors = 0
        self.malformed = 0  # checksum held but not label\tvalue lines
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
        # the kernel takes the bytes in, scans and splits them; it hands
        # each block to _block_done, and returns for a good HEX frame when
        # on_hex is set (then goes on where it stopped)
        while vedirect_kernel.feed(self, data, length) != _EV_MORE:
            sv = self._state
            frame = self._hexv
            if frame is None:
                frame = self._hexv = HexFrame(self._hex)
            frame.length = sv[_SV_HEXLEN]
            sv[_SV_HEXLEN] = 0
            try:
                self._on_hex(frame)
            except Exception:
                self.callback_errors += 1

    def reset(self):
        """Forget a half-received block or HEX frame (call after a silent gap
        on the line: a device reboot or a cable pulled mid-block)."""
        sv = self._state
        sv[_SV_STATE] = _S_SYNC
        sv[_SV_P] = sv[_SV_END] = sv[_SV_HEXLEN] = 0

    @property
    def held(self):  # bytes of a block (or of the next one) held between feeds
        return self._state[_SV_END]

    @property
    def on_hex(self):  # called with each good HEX frame (a HexFrame), or None
        return self._on_hex

    @on_hex.setter
    def on_hex(self, fn):
        self._on_hex = fn
        self._state[_SV_WANT_HEX] = 0 if fn is None else 1  # the kernel keeps them otherwise

    @property
    def blocks_ok(self):  # good blocks handed to on_block
        return self._state[_SV_BLOCKS]

    @property
    def bytes_in(self):  # bytes fed
        return (self._state[_SV_BYTES_HI] << 30) + self._state[_SV_BYTES_LO]

    @property
    def hex_ok(self):  # HEX frames whose check byte holds
        return self._state[_SV_HEX_OK]

    @property
    def hex_bad(self):  # HEX frames cut short, too long, or failing their check
        return self._state[_SV_HEX_BAD]

    @property
    def overflows(self):  # block or field table too large: block dropped
        return self._state[_SV_OVERFLOWS]

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

    # -- completed units ------------------------------------------------------

    def _block_done(self, r, length):
        # r: the kernel's split() of buf[0:length] (it checks the sum
        # first: _BAD_SUM, then every line)
        blk = self._block
        if r < 256:  # + 256: the first label opened a good block before
            if r < 0:
                r = self._rescue(r, length)
                if r < 0:
                    return False
                length = blk.length
            if r < 256:
                self._learn_first()
        blk.count = r & 255
        blk.length = length
        try:
            self.on_block(blk)
        except Exception:  # a consumer bug must not stop the parser
            self.callback_errors += 1
        return True

    def _rescue(self, count, length):
        # a bad block: count it, and look for the next block inside it;
        # split()'s result for the block found (its length in blk.length),
        # or -1
        buf = self._buf
        total = vedirect_kernel.checksum(buf, 0, length)
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
                    return -1
                s = late
                break
            run += vedirect_kernel.checksum(buf, last, s)
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
        vedirect_kernel.remove(buf, 0, s, length)  # the block found, to the start
        self._block.length = length - s
        return vedirect_kernel.split(buf, 0, length - s, self._offs, self._ent, self._st, self._vals,
                                     self._seen, _VF.TABLE, self._first, self._first_len)

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
        k = self._first_next
        self._first_next = (k + 1) % _MAX_FIRST
        base = k * _MAX_LABEL
        first = self._first
        buf = self._buf
        for i in range(n):  # rare: a new label opened a good block
            first[base + i] = buf[s + i]
        self._first_len[k] = n

    def _is_first(self, s):
        """Is the label at buf[s] (up to its \t) one that opened a block?"""
        return vedirect_kernel.label_in(self._buf, s, self._first, self._first_len, _MAX_LABEL)

    def _split(self, start, length):
        """Split buf[start:length] (a block whose sum is 0) into fields in
        _offs/_ent/_st/_vals; the field count, or _BAD_LINE / _BAD_DUP if a
        line breaks the syntax (the kernel: vedirect_kernel.split)."""
        r = vedirect_kernel.split(self._buf, start, length, self._offs, self._ent, self._st, self._vals,
                                  self._seen, _VF.TABLE, self._first, self._first_len)
        return r & 255 if r > 0 else r


import vedirect_fields as _VF  # noqa: E402  (the label table; resident anyway)
import vedirect_kernel  # noqa: E402
