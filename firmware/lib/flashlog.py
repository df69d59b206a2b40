# Append-only record log on NOR flash (store-and-forward buffer of the gateway).
#
# The problem (littlefs DESIGN.md style): power can go at any byte of any
# write; RAM is ~110 KB; NOR flash erases 4 KB at a time and programs each
# byte once (bits 1 -> 0). We must never lose a record that was flushed,
# never re-send one that was acknowledged, and wear all sectors evenly.
#
# Block layout (block = erase sector, lib/blockdev.py contract):
#   block 0, 1       cursor area: two sectors used alternately
#   block 2 .. N-1   ring of L = N-2 log sectors, used strictly round robin;
#                    the sector after the head is always kept erased, so the
#                    log holds at most L-1 sectors of records
#
# Log sector:
#   +0  u32 magic "VGWL"   +4 u32 sector_seq (+1 per sector opened)
#   +8  u32 first_seq      +12 u32 erase_count (wear, carried across erases)
#   +16 u32 crc32(+0..+15)
#   +20 records, packed, until the first 0xFF byte where a header would start
# Record:
#   +0 u8 0xA5  +1 u8 type  +2 u16 n  +4 u32 seq  +8 payload[n]  +8+n u32 crc32
#   Header and payload are programmed first, the CRC (covering header and
#   payload) afterwards as a separate prog: it is the commit mark. A record
#   whose CRC does not match is torn: its length is trusted only when the
#   header itself is plausible; anything else closes the sector for writing.
# Cursor sector:
#   +0 u32 magic "VGWM"  +4 u32 generation  +8 u32 crc32(+0..+7)
#   +16 slots of 8 bytes: u32 acked_seq, u32 crc32(seq) ^ 0x5A5A5A5A;
#   one slot per mark_uploaded, written once; when a sector is full the
#   other one is erased, gets generation+1, and the value moves there.
#
# Sequence numbers are 32-bit, never 0, compared wrap-safe. At every open the
# log skips _max_batch numbers past the last seq on flash and writes a boot
# marker (type 0, empty, internal) with that seq before handing out any
# other: a seq given to a record that was still in RAM at a cut is never
# given to a different record, even after several cuts in a row (consumers
# de-duplicate by seq). Record type 0 is reserved for that marker.
#
# Length: one power-loss-safe structure (ring of sectors, block format, recovery
# scan): its invariants span all of it; a tenth is its design notes.
import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from array import array

import blockdev

_SEC_MAGIC = const(0x4C574756)  # b"VGWL" little endian
_META_MAGIC = const(0x4D574756)  # b"VGWM"
_SEC_HDR = const(20)
_META_HDR = const(16)
_SLOT = const(8)
_SLOT_XOR = const(0x5A5A5A5A)
_REC_MAGIC = const(0xA5)
_REC_HDR = const(8)
_REC_CRC = const(4)
_REC_OVH = const(12)
_META_BLOCKS = const(2)
_MAX_PAYLOAD = const(1024)  # largest record payload (bounds the read buffer)
_DEFAULT_BATCH = const(1024)  # RAM append buffer, bytes (see __init__)
_M32 = const(0xFFFFFFFF)

# --- CRC-32 (IEEE 802.3, same value as zlib.crc32): the port's C version;
# a pure-Python fallback (flashlog_crc.crc32_py) is
# loaded only on a port without binascii.crc32, so it costs no RAM here.
def _pick_crc():
    # The C version when the port has one (same values, ~100x faster).
    try:
        import binascii

        if binascii.crc32(b"123456789") == 0xCBF43926:
            return binascii.crc32
    except (ImportError, AttributeError):
        pass
    from flashlog_crc import crc32_py

    return crc32_py


crc32 = _pick_crc()


def seq_diff(a, b):
    """a - b as a signed 32-bit number: > 0 when a is after b (wrap-safe)."""
    return ((a - b + 0x80000000) & _M32) - 0x80000000


def _seq_add(a, n):
    s = (a + n) & _M32
    return s if s else 1  # 0 is never a record seq (it means "none")


def _u32(buf, off):
    return struct.unpack_from("<I", buf, off)[0]


class FlashLog:
    """Record log on a block device. All public methods catch device errors
    (OSError): they are counted in stats()["io_errors"] and the call returns
    a failure value instead of raising."""

    def __init__(self, bd, batch_size=_DEFAULT_BATCH):
        # batch_size: RAM append buffer in bytes; records wait there until
        # flush() or until the next one does not fit. Bounded: one buffer,
        # allocated once. A record larger than it is refused and counted.
        why = blockdev.check(bd)
        if why is not None:
            raise ValueError(why)  # wiring bug, not outside input
        self.bd = bd
        bs = bd.block_size
        self._bs = bs
        self._L = bd.block_count - _META_BLOCKS
        self.max_payload = min(_MAX_PAYLOAD, batch_size - _REC_OVH, bs - _SEC_HDR - _REC_OVH)
        self._batch = bytearray(batch_size)
        self._blen = 0
        self._gen = 0  # bumped whenever queued records move to flash
        self._max_batch = batch_size // _REC_OVH + 1  # records in RAM at most
        self._rbuf = bytearray(self.max_payload + _REC_OVH)  # one record
        self._hbuf = bytearray(_SEC_HDR)
        self._cbuf = bytearray(64)  # blank checks, slot scans
        L = self._L
        self._first = array("I", bytes(4 * L))  # first_seq of each sector
        self._ecount = array("I", bytes(4 * L))  # erase count of each sector
        self.head = -1  # ring index of the sector being written, -1 = empty
        self._head_sseq = 0
        self.tail = -1
        self.nlive = 0
        self._wpos = bs  # write offset in head sector (bs = closed)
        self._free_ok = False  # sector after head erased by us this boot
        self._pend = False  # that sector still has to be pre-erased
        self.next_seq = 1
        self.cursor = 0  # last acknowledged seq (cumulative)
        self._meta = -1  # current cursor sector (0/1), -1 = none valid
        self._mgen = 0
        self._mslot = 0
        # counters (since this object was made)
        self.written = 0  # records programmed and committed
        self.torn = 0  # torn records skipped by the boot scan
        self.bad_reads = 0  # records skipped while reading (CRC, garbage)
        self.dropped = 0  # appends refused (too big, or RAM full with flash failing)
        self.overwritten = 0  # records erased to make room
        self.overwritten_unsent = 0  # ... of which never acknowledged (data lost)
        self.erases = 0
        self.io_errors = 0
        self.flushes = 0
        self.bad_marks = 0  # mark_uploaded of a seq not yet appended
        self.closed_sectors = 0  # sectors closed early (garbage after a cut)
        self.opened_ok = self._open()

    # ------------------------------------------------------------------ open
    def _open(self):
        try:
            self._meta_load()
            self._scan()
        except OSError:
            self.io_errors += 1
            return False
        self._queue(0, b"")  # boot marker: reserves the seqs handed out from now
        return self.flush()

    def _read_sec_hdr(self, i):
        """(sector_seq, first_seq, erase_count) of ring sector i, or None."""
        h = self._hbuf
        self.bd.read(i + _META_BLOCKS, 0, h)
        magic, sseq, first, ecount, crc = struct.unpack("<IIIII", h)
        if magic != _SEC_MAGIC or crc != crc32(memoryview(h)[:16]):
            return None
        return sseq, first, ecount

    def _scan(self):
        L = self._L
        sseqs = array("I", bytes(4 * L))  # transient, freed after open
        valid = bytearray(L)
        best = -1
        emax = 0
        for i in range(L):
            r = self._read_sec_hdr(i)
            if r is None:
                continue
            valid[i] = 1
            sseqs[i] = r[0]
            self._first[i] = r[1]
            self._ecount[i] = r[2]
            if r[2] > emax:
                emax = r[2]
            if best < 0 or seq_diff(r[0], sseqs[best]) > 0:
                best = i
        for i in range(L):
            if not valid[i]:
                self._ecount[i] = emax  # unknown: assume as worn as the worst
        if best < 0:
            return  # empty log: next_seq stays 1 (or after the cursor)
        self.head = best
        self._head_sseq = sseqs[best]
        n = 1
        i = best
        while n < L:
            j = (i - 1) % L
            if not valid[j] or sseqs[j] != ((self._head_sseq - n) & _M32):
                break
            i = j
            n += 1
        self.tail = i
        self.nlive = n
        if n == L:
            # The sector after the head is the one kept erased; finding it in
            # the chain means its pre-erase had not run, or a cut hit it
            # (content undefined, maybe half gone): drop it now (counting
            # what it held) and erase it before use.
            self._drop_tail()
        last = self._scan_head()
        self.next_seq = _seq_add(last, self._max_batch + 1)
        if seq_diff(self.next_seq, self.cursor) <= 0:
            self.next_seq = _seq_add(self.cursor, 1)

    def _scan_head(self):
        """Walk the head sector; set the write offset; return the last seq."""
        blk = self.head + _META_BLOCKS
        last = (self._first[self.head] - 1) & _M32
        off = _SEC_HDR
        h = self._hbuf
        hv = memoryview(h)[:_REC_HDR]
        while off + _REC_OVH <= self._bs:
            self.bd.read(blk, off, hv)
            if h[0] == 0xFF and blockdev.is_blank(self.bd, blk, off, off + _REC_HDR, self._cbuf):
                break
            r = self._check_at(blk, off)
            if r is None:  # garbage: length untrustworthy, stop using sector
                off = self._bs
                self.closed_sectors += 1
                break
            seq, n, ok = r
            if ok:
                last = seq
            else:
                self.torn += 1
            off += n + _REC_OVH
        if off < self._bs and not blockdev.is_blank(self.bd, blk, off, self._bs, self._cbuf):
            off = self._bs  # bytes after the end are not erased: never prog there
            self.closed_sectors += 1
        self._wpos = off
        return last

    def _check_at(self, blk, off):
        """Parse the record at off: None if the header is implausible, else
        (seq, n, crc_ok); the record sits in self._rbuf."""
        rb = self._rbuf
        self.bd.read(blk, off, memoryview(rb)[:_REC_HDR])
        if rb[0] != _REC_MAGIC:
            return None
        n = rb[2] | (rb[3] << 8)
        if n > self.max_payload or off + n + _REC_OVH > self._bs:
            return None
        self.bd.read(blk, off + _REC_HDR, memoryview(rb)[_REC_HDR : n + _REC_OVH])
        seq = _u32(rb, 4)
        ok = crc32(memoryview(rb)[: _REC_HDR + n]) == _u32(rb, _REC_HDR + n)
        return seq, n, ok

    # ----------------------------------------------------------- cursor area
    def _meta_load(self):
        gens = [None, None]
        h = self._cbuf
        for m in (0, 1):
            mv = memoryview(h)[:12]
            self.bd.read(m, 0, mv)
            magic, gen, crc = struct.unpack_from("<III", h, 0)
            if magic == _META_MAGIC and crc == crc32(memoryview(h)[:8]):
                gens[m] = gen
        order = [m for m in (0, 1) if gens[m] is not None]
        if len(order) == 2 and seq_diff(gens[order[0]], gens[order[1]]) > 0:
            order.reverse()  # older first, newer last
        value = None
        for m in order:
            v, nxt = self._meta_scan(m)
            if v is not None:
                value = v
            self._meta = m
            self._mgen = gens[m]
            self._mslot = nxt
        if value is not None:
            self.cursor = value
            self.next_seq = _seq_add(value, 1)

    def _meta_scan(self, m):
        """(last valid value or None, index of the first free slot)."""
        per = (self._bs - _META_HDR) // _SLOT
        buf = self._cbuf
        value = None
        nxt = 0
        i = 0
        while i < per:
            k = min(8, per - i)  # slots per read (64-byte buffer)
            mv = memoryview(buf)[: k * _SLOT]
            self.bd.read(m, _META_HDR + i * _SLOT, mv)
            for j in range(k):
                o = j * _SLOT
                s, c = struct.unpack_from("<II", buf, o)
                if s == _M32 and c == _M32:
                    continue  # never written
                nxt = i + j + 1  # written (maybe torn): never prog it again
                if c == crc32(memoryview(buf)[o : o + 4]) ^ _SLOT_XOR:
                    value = s
            i += k
        return value, nxt

    def _meta_write(self, seq):
        per = (self._bs - _META_HDR) // _SLOT
        bd = self.bd
        if self._meta < 0 or self._mslot >= per:
            m = 1 - self._meta if self._meta >= 0 else 0
            gen = _seq_add(self._mgen, 1)
            bd.erase(m)
            self.erases += 1
            hdr = struct.pack("<II", _META_MAGIC, gen)
            bd.prog(m, 0, hdr + struct.pack("<I", crc32(hdr)))
            self._meta = m
            self._mgen = gen
            self._mslot = 0
        b = struct.pack("<I", seq)
        slot = b + struct.pack("<I", crc32(b) ^ _SLOT_XOR)
        i = self._mslot
        self._mslot = i + 1  # advance first: a failed prog leaves a used slot
        bd.prog(self._meta, _META_HDR + i * _SLOT, slot)
        bd.sync()

    def mark_uploaded(self, seq):
        """Persist that every record up to and including seq was acknowledged
        (cumulative: call it with the highest seq of an unbroken acked run).
        Returns True when persisted (or nothing to do), False on a seq that was
        never handed out or a device error."""
        last = (self.next_seq - 1) & _M32
        if seq_diff(seq, last) > 0:
            self.bad_marks += 1
            return False
        if seq_diff(seq, self.cursor) <= 0:
            return True
        try:
            self._meta_write(seq)
        except OSError:
            self.io_errors += 1
            return False
        self.cursor = seq
        return True

    # --------------------------------------------------------------- append
    def append(self, rtype, payload):
        """Queue one record (rtype 1..255, payload bytes-like up to
        max_payload). Returns its seq, or 0 if it was refused (counted)."""
        if rtype < 1 or rtype > 255:
            self.dropped += 1
            return 0
        return self._queue(rtype, payload)

    def _queue(self, rtype, payload):
        n = len(payload)
        if n > self.max_payload:
            self.dropped += 1
            return 0
        need = n + _REC_OVH
        if self._blen + need > len(self._batch):
            if not self.flush() and self._blen + need > len(self._batch):
                self.dropped += 1
                return 0
        seq = self.next_seq
        self.next_seq = _seq_add(seq, 1)
        b = self._batch
        o = self._blen
        struct.pack_into("<BBHI", b, o, _REC_MAGIC, rtype, n, seq)
        b[o + _REC_HDR : o + _REC_HDR + n] = payload
        c = crc32(memoryview(b)[o : o + _REC_HDR + n])
        struct.pack_into("<I", b, o + _REC_HDR + n, c)
        self._blen = o + need
        return seq

    def pending(self):
        """Bytes waiting in RAM for flush()."""
        return self._blen

    def flush(self):
        """Program every queued record and sync. True on success; on a device
        error the records not yet written stay queued and False is returned."""
        b = self._batch
        mv = memoryview(b)
        done = 0
        ok = True
        try:
            if self._pend:
                self._pre_erase()
            while done < self._blen:
                n = b[done + 2] | (b[done + 3] << 8)
                need = n + _REC_OVH
                if self.head < 0 or self._wpos + need > self._bs:
                    self._advance(_u32(b, done + 4))
                blk = self.head + _META_BLOCKS
                w = self._wpos
                self._wpos = w + need  # the bytes are spent even if prog fails
                self.bd.prog(blk, w, mv[done : done + _REC_HDR + n])
                self.bd.prog(blk, w + _REC_HDR + n, mv[done + _REC_HDR + n : done + need])
                self.written += 1
                done += need
            self.bd.sync()
            self.flushes += 1
        except OSError:
            self.io_errors += 1
            self._wpos = self._bs  # next write goes to a fresh sector
            ok = False
        if done:
            self._gen += 1
            rest = self._blen - done
            if rest:
                b[0:rest] = bytes(mv[done : self._blen])
            self._blen = rest
        return ok

    def _erase(self, i):
        self._ecount[i] += 1
        self.erases += 1
        self.bd.erase(i + _META_BLOCKS)

    def _drop_tail(self):
        """Forget the oldest sector, counting what it held."""
        i = self.tail
        total, unsent = self._count_sector(i)
        self.overwritten += total
        self.overwritten_unsent += unsent
        self.nlive -= 1
        self.tail = (i + 1) % self._L if self.nlive else -1

    def _count_sector(self, i):
        """(records, records after the cursor) committed in ring sector i."""
        blk = i + _META_BLOCKS
        off = _SEC_HDR
        total = 0
        unsent = 0
        while off + _REC_OVH <= self._bs:
            r = self._check_at(blk, off)
            if r is None:
                break
            seq, n, ok = r
            if ok and self._rbuf[1]:
                total += 1
                if seq_diff(seq, self.cursor) > 0:
                    unsent += 1
            off += n + _REC_OVH
        return total, unsent

    def _advance(self, first_seq):
        """Open the next sector for records starting at first_seq."""
        L = self._L
        nxt = (self.head + 1) % L if self.head >= 0 else 0
        if self.nlive and nxt == self.tail:
            self._drop_tail()  # ring full (a cut came before the pre-erase)
        if not self._free_ok:
            self._erase(nxt)
        self._free_ok = False
        self._pend = True  # pre-erase the sector after this one, next flush
        sseq = _seq_add(self._head_sseq, 1) if self.head >= 0 else 1
        hdr = struct.pack("<IIII", _SEC_MAGIC, sseq, first_seq, self._ecount[nxt])
        self.bd.prog(nxt + _META_BLOCKS, 0, hdr + struct.pack("<I", crc32(hdr)))
        self._first[nxt] = first_seq
        self.head = nxt
        self._head_sseq = sseq
        self._wpos = _SEC_HDR
        if self.nlive == 0:
            self.tail = nxt
        self.nlive += 1

    def _pre_erase(self):
        # Keep one sector erased ahead of the head, so an advance is only a
        # header prog; the oldest data goes one sector early. Done at the
        # start of the flush after an advance: one flush never waits for
        # more than one 4 KB erase (~45 ms on ESP32 flash) in steady state.
        self._pend = False
        nn = (self.head + 1) % self._L
        if nn == self.head:
            return
        if self.nlive > 1 and nn == self.tail:
            self._drop_tail()
        self._erase(nn)
        self._free_ok = True

    # ----------------------------------------------------------------- read
    def _locate(self, seq):
        """(ring index, sector_seq) of the live sector holding seq (or the
        tail when seq is older than everything)."""
        L = self._L
        lo = 0
        hi = self.nlive - 1
        while lo < hi:  # last k with first[k] <= seq
            mid = (lo + hi + 1) // 2
            if seq_diff(self._first[(self.tail + mid) % L], seq) <= 0:
                lo = mid
            else:
                hi = mid - 1
        return (self.tail + lo) % L, (self._head_sseq - (self.nlive - 1 - lo)) & _M32

    def _live(self, sseq):
        return 0 <= seq_diff(self._head_sseq, sseq) < self.nlive

    def oldest_seq(self):
        """Seq of the oldest record still stored (flash or RAM), 0 if none."""
        if self.nlive:
            return self._first[self.tail]
        if self._blen:
            return _u32(self._batch, 4)
        return 0

    def read_from(self, seq):
        """Yield (seq, type, payload bytes) for every stored record with seq
        >= the argument, oldest first: flash, then records still in RAM.
        Appends and flushes may happen between steps (a flush moves RAM
        records to flash behind the reader's position, which it then walks);
        records erased under the reader are skipped (they are gone)."""
        want = seq
        L = self._L
        i = -1
        sseq = 0
        off = _SEC_HDR
        while True:
            if i < 0 and self.nlive:
                i, sseq = self._locate(want)
                off = _SEC_HDR
            while i >= 0:  # flash
                if not self._live(sseq):  # overwritten while we paused
                    if not self.nlive:
                        i = -1
                        break
                    i = self.tail
                    sseq = (self._head_sseq - self.nlive + 1) & _M32
                    off = _SEC_HDR
                end = self._wpos if i == self.head else self._bs
                r = None
                if off + _REC_OVH <= end:
                    try:
                        r = self._check_at(i + _META_BLOCKS, off)
                    except OSError:
                        self.io_errors += 1
                if r is None:
                    if i == self.head:
                        break
                    i = (i + 1) % L
                    sseq = (sseq + 1) & _M32
                    off = _SEC_HDR
                    continue
                rseq, n, ok = r
                off += n + _REC_OVH
                if not ok:
                    self.bad_reads += 1
                    continue
                if seq_diff(rseq, want) >= 0:
                    want = _seq_add(rseq, 1)
                    if self._rbuf[1]:  # type 0: boot marker, internal
                        yield rseq, self._rbuf[1], bytes(self._rbuf[_REC_HDR : _REC_HDR + n])
            # records still in RAM (newer than anything on flash)
            gen = self._gen
            o = 0
            while o < self._blen:
                b = self._batch
                n = b[o + 2] | (b[o + 3] << 8)
                rseq = _u32(b, o + 4)
                o += n + _REC_OVH
                if seq_diff(rseq, want) >= 0:
                    want = _seq_add(rseq, 1)
                    t = b[o - n - _REC_OVH + 1]
                    if t:
                        yield rseq, t, bytes(b[o - n - _REC_CRC : o - _REC_CRC])
                        if self._gen != gen:
                            break  # flushed meanwhile: continue on flash
            if self._gen == gen:
                return

    def unsent(self):
        """read_from(cursor + 1): what the uplink still has to deliver."""
        return self.read_from(_seq_add(self.cursor, 1))

    def find_before(self, seq, rtype):
        """Seq of the newest record of type rtype at or before seq, looking
        back at most 2 sectors (for delta-coded records that need their key
        frame). 0 if none."""
        best = 0
        if not self.nlive:
            start = 0
        else:
            i, _ = self._locate(seq)
            back = 0
            while back < 2 and i != self.tail:
                i = (i - 1) % self._L
                back += 1
            start = self._first[i]
        for s, t, _p in self.read_from(start):
            if seq_diff(s, seq) > 0:
                break
            if t == rtype:
                best = s
        return best

    # ---------------------------------------------------------------- stats
    def erase_counts(self):
        """Erase count of every ring sector (persisted in sector headers)."""
        return list(self._ecount)

    def capacity(self):
        """Record bytes the ring can hold (L-1 sectors, one kept erased)."""
        return (self._L - 1) * (self._bs - _SEC_HDR)

    def unsent_span(self):
        """Seqs handed out after the cursor that are still stored: an upper
        bound on the records to deliver (boot markers and the seq gap of a
        reboot count too). Cheap: no flash read."""
        last = (self.next_seq - 1) & _M32
        start = self.cursor
        old = self.oldest_seq()
        if old and seq_diff(old - 1, start) > 0:
            start = (old - 1) & _M32
        d = seq_diff(last, start)
        return d if d > 0 else 0

    def stats(self):
        return {
            "written": self.written,
            "torn": self.torn,
            "bad_reads": self.bad_reads,
            "dropped": self.dropped,
            "overwritten": self.overwritten,
            "overwritten_unsent": self.overwritten_unsent,
            "erases": self.erases,
            "io_errors": self.io_errors,
            "flushes": self.flushes,
            "bad_marks": self.bad_marks,
            "closed_sectors": self.closed_sectors,
            "live_sectors": self.nlive,
            "sectors": self._L,
            "next_seq": self.next_seq,
            "cursor": self.cursor,
            "oldest_seq": self.oldest_seq(),
            "unsent": self.unsent_span(),
            "pending_bytes": self._blen,
        }
