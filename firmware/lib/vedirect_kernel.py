# The VE.Direct text parser's per-byte work, as @micropython.viper kernels:
# machine code on the board (ESP32: xtensawin) and the unix port (x64), so a
# block costs one call instead of a bytecode loop per byte. Under CPython the
# same source runs as plain Python (the decorator and the pointer casts are
# identities below), so both runtimes run one implementation and the shared
# tests check both.
#
# Viper rules kept here (they differ from Python; see MicroPython "viper"):
# - ptr8/ptr16/ptr32 loads are unsigned: every byte is read through int().
# - a viper int is a machine word (32 bits on the ESP32): numbers of more
#   than 9 decimal digits, or hex from 0x80000000 up, are only checked here
#   and parsed by the caller in Python (_ST_WIDE); their words are not used.
# - ptr32 loads zero-extend on a 64-bit host, so values are only stored here
#   (array('i')); the caller reads them back through the array.
#
# Length: viper kernels are long on purpose: a call into one costs ~0.2 us, so
# per-field work is inlined in split() and feed() rather than put in helpers.
try:
    import micropython
except ImportError:  # CPython: the kernels run as plain Python

    class micropython:  # type: ignore[no-redef]
        @staticmethod
        def viper(f):
            return f

    def ptr8(b):  # type: ignore[no-redef]
        return b

    def ptr16(b):  # type: ignore[no-redef]
        return b

    def ptr32(b):  # type: ignore[no-redef]
        return b


try:
    from micropython import const
except ImportError:

    def const(x):
        return x


# Per-field status left in the block's status bytes by split()
_ST_INT = const(0)  # the value is in vals[i]
_ST_NONE = const(1)  # "---": not available
_ST_ON = const(2)
_ST_OFF = const(3)
_ST_WIDE = const(4)  # text, an unknown label's value, or a number too wide for a word

# split() results other than a field count (as vedirect.Parser uses them)
_BAD_LINE = const(-4)
_BAD_DUP = const(-2)
_BAD_SUM = const(-3)

# Layout of the label table `tab` (vedirect_fields.TABLE): a 256-slot hash
# table (label index + 1, 0 = empty; h = h * 31 + byte over the label, 16
# bits, folded to 8), then per label its offset into the label bytes, its
# length, its kind/decimals byte, then the label bytes.
_HT_SLOTS = const(256)


@micropython.viper
def checksum(buf, a: int, e: int) -> int:
    """Sum of buf[a:e] mod 256 (the text block checksum)."""
    b = ptr8(buf)
    total = 0
    i = a
    while i < e:
        total += int(b[i])
        i += 1
    return total & 0xFF


@micropython.viper
def split(buf, start: int, length: int, offs, ent, status, vals, seen, tab, first, first_len) -> int:
    """Split buf[start:length] (a block ending in "\\r\\nChecksum\\t<byte>")
    into fields: per field i, offs[3i:3i+3] = label start, tab, value end;
    ent[i] = label index (255 unknown); status[i] its status (ST_*) with a
    number in vals[i]. Returns the field count, or _BAD_SUM when its bytes
    do not sum to 0 mod 256, or else _BAD_LINE / _BAD_DUP when a line
    breaks the protocol's form (label 1..8 bytes without control bytes or
    spaces, value <= 32 bytes, known labels' values in their kind's form,
    <= 22 fields, each label once). A count has 256 added when the first
    label is one of `first` (label_in()). One pass: the sum is taken on the
    way (a bad line sums the block again, so a bad sum still comes first)."""
    b = ptr8(buf)
    o = ptr16(offs)
    en = ptr8(ent)
    sb = ptr8(status)
    sn = ptr8(seen)
    t = ptr8(tab)
    vl = ptr32(vals)
    nlab = int(len(seen))
    loff = _HT_SLOTS
    llen = loff + nlab
    kd = llen + nlab
    lab = kd + nlab
    total = int(b[start]) + int(b[start + 1])  # the block's leading \r\n
    count = 0
    r = 0
    s = start + 2
    stop = length - 12  # index of "\r\nChecksum"
    while s < stop:
        # the label: 1..8 bytes up to its tab, no control bytes or spaces,
        # hashed and summed on the way
        h = 0
        j = s
        while j < stop:
            c = int(b[j])
            if c <= 32 or c == 127 or j - s >= 8:
                break
            h = (h * 31 + c) & 0xFFFF
            total += c
            j += 1
        if j >= stop or int(b[j]) != 9 or j == s or count >= 22:
            r = _BAD_LINE
            break
        tb = j
        total += 9
        # label -> index: hash slot, then linear probing (tab's layout above)
        slot = (h ^ (h >> 8)) & 0xFF
        k = -1
        while True:
            k = int(t[slot]) - 1
            if k < 0:
                break
            if int(t[llen + k]) == tb - s:
                a = lab + int(t[loff + k])
                m = 0
                while m < tb - s and int(b[s + m]) == int(t[a + m]):
                    m += 1
                if m == tb - s:
                    break
            slot = (slot + 1) & 0xFF
        kind = int(t[kd + k]) >> 4 if k >= 0 else 3
        vs = tb + 1
        e = -1
        v = -1
        if kind == 0 or kind == 4:
            # decimal, the common case: digits up to the line's \r\n,
            # parsed and summed in one pass (anything else: the path below)
            j = vs
            neg = 0
            if int(b[j]) == 45:
                neg = 1
                j += 1
            acc = 0
            sub = 0
            c = int(b[j])
            while c >= 48 and c <= 57 and j - vs < 11:
                acc = acc * 10 + c - 48
                sub += c
                j += 1
                c = int(b[j])
            if c == 13 and int(b[j + 1]) == 10 and j > vs + neg and j - vs - neg <= 10:
                e = j
                total += sub + 45 * neg
                if j - vs - neg <= 9:
                    v = _ST_INT
                    vl[count] = 0 - acc if neg else acc
                else:
                    v = _ST_WIDE  # 10 digits: parsed in Python
        if e < 0:
            # the value: up to the next \r\n (the last one up to the
            # Checksum line), summed
            e = stop
            j = vs
            while j < stop:
                c = int(b[j])
                if c == 13 and int(b[j + 1]) == 10:
                    e = j
                    break
                total += c
                j += 1
        if e < stop:
            total += 23  # the line's \r\n (the last one is the tail's)
        if e - vs > 32:
            r = _BAD_LINE
            break
        if k < 0:
            j = vs
            while j < e:
                c = int(b[j])
                if (c < 32 and c != 9) or c == 127:
                    r = _BAD_LINE
                    break
                j += 1
            if r:
                break
            # an unknown label twice means two blocks ran together
            n = tb - s
            q = 0
            while q < count:
                a = int(o[3 * q])
                if int(en[q]) == 255 and int(o[3 * q + 1]) - a == n:
                    m = 0
                    while m < n and int(b[a + m]) == int(b[s + m]):
                        m += 1
                    if m == n:
                        r = _BAD_DUP
                        break
                q += 1
            if r:
                break
            en[count] = 255
            sb[count] = _ST_WIDE
        else:
            n = e - vs
            c0 = int(b[vs]) if n > 0 else 0
            if v >= 0:
                pass  # a decimal, parsed above
            elif kind == 2:  # ON/OFF; BMV-600 firmware <= 2.09 sends On/Off
                if c0 == 79 or c0 == 111:
                    c = int(b[vs + 1]) if n > 1 else 0
                    if n == 2 and (c == 78 or c == 110):
                        v = _ST_ON
                    elif n == 3 and (c == 70 or c == 102) and (int(b[vs + 2]) == 70 or int(b[vs + 2]) == 102):
                        v = _ST_OFF
            elif kind == 3:  # text: 1..32 printable bytes
                v = _ST_WIDE if n > 0 else -1
                j = vs
                while j < e:
                    c = int(b[j])
                    if c < 32 or c > 126:
                        v = -1
                        break
                    j += 1
            elif n == 3 and c0 == 45 and int(b[vs + 1]) == 45 and int(b[vs + 2]) == 45:
                v = -1 if kind == 1 else _ST_NONE  # "---": not synchronised
            elif kind == 1 and n >= 3 and c0 == 48 and (int(b[vs + 1]) == 120 or int(b[vs + 1]) == 88):
                # 0x + 1..8 hex digits (32-bit at most); 8 digits from
                # 0x80000000 up do not fit a signed word: _ST_WIDE
                acc = 0
                v = _ST_INT if n - 2 <= 7 else (-1 if n - 2 > 8 else (_ST_INT if int(b[vs + 2]) <= 55 else _ST_WIDE))
                j = vs + 2
                while j < e and v >= 0:
                    c = int(b[j])
                    if c >= 48 and c <= 57:
                        acc = (acc << 4) | (c - 48)
                    elif c >= 65 and c <= 70:
                        acc = (acc << 4) | (c - 55)
                    elif c >= 97 and c <= 102:
                        acc = (acc << 4) | (c - 87)
                    else:
                        v = -1
                    j += 1
                if v == _ST_INT:
                    vl[count] = acc
            elif kind == 1:  # a decimal where hex may stand (PID, OR)
                j = vs
                if n > 0 and c0 == 45:
                    j += 1
                if j < e and e - j <= 10:
                    acc = 0
                    v = _ST_INT if e - j <= 9 else _ST_WIDE
                    q = j
                    while q < e:
                        c = int(b[q]) - 48
                        if c < 0 or c > 9:
                            v = -1
                            break
                        acc = acc * 10 + c
                        q += 1
                    if v == _ST_INT:
                        vl[count] = -acc if j > vs else acc
            if v < 0:
                r = _BAD_LINE
                break
            if int(sn[k]):
                r = _BAD_DUP
                break
            sn[k] = 1
            en[count] = k
            sb[count] = v
        o[3 * count] = s
        o[3 * count + 1] = tb
        o[3 * count + 2] = e
        count += 1
        s = e + 2
    i = 0
    while i < count:  # clear only the flags this block set
        if int(en[i]) != 255:
            sn[int(en[i])] = 0
        i += 1
    if r or s != stop + 2 or count == 0:
        # a line broke (or an empty line, no field): the sum still decides
        # first, over the whole block
        total = 0
        j = start
        while j < length:
            total += int(b[j])
            j += 1
        if total & 0xFF:
            return _BAD_SUM
        return r if r else _BAD_LINE
    j = stop
    while j < length:  # "\r\nChecksum\t" and the checksum byte
        total += int(b[j])
        j += 1
    if total & 0xFF:
        return _BAD_SUM
    # + 256 when the first label opened a good block before (label_in())
    n = int(o[1]) - int(o[0])
    fl = ptr8(first_len)
    fb = ptr8(first)
    slots = int(len(first_len))
    q = 0
    while q < slots:
        if int(fl[q]) == n:
            a = q * 8  # slots of 8 bytes, as label_in() is called
            m = 0
            while m < n and int(b[start + 2 + m]) == int(fb[a + m]):
                m += 1
            if m == n:
                return count + 256
        q += 1
    return count


@micropython.viper
def label_in(buf, s: int, names, lens, size: int) -> int:
    """True (1) if the label at buf[s] (up to its tab, at most `size` bytes)
    is one of the labels in `names` (slots of `size` bytes, lengths in
    `lens`; a length of 0 is an empty slot)."""
    b = ptr8(buf)
    nm = ptr8(names)
    ln = ptr8(lens)
    n = int(len(buf))
    t = s
    while t < n and t <= s + size and int(b[t]) != 9:
        t += 1
    if t >= n or t > s + size:
        return 0
    k = 0
    slots = int(len(lens))
    while k < slots:
        if int(ln[k]) == t - s:
            a = k * size
            m = 0
            while m < t - s and int(b[s + m]) == int(nm[a + m]):
                m += 1
            if m == t - s:
                return 1
        k += 1
    return 0


@micropython.viper
def hex_ok(buf, length: int) -> int:
    """1 if buf[0:length] is ':' + command nibble + hex byte pairs + '\\n'
    whose nibble + bytes + check byte sum to 0x55 (HEX protocol s.1)."""
    b = ptr8(buf)
    if length < 4 or int(b[0]) != 58 or int(b[length - 1]) != 10 or (length - 3) & 1:
        return 0
    total = 0
    i = 1
    while i < length - 1:
        c = int(b[i])
        if c >= 48 and c <= 57:
            c -= 48
        elif c >= 65 and c <= 70:
            c -= 55
        else:
            return 0
        # the command is one nibble; then each byte is two
        total += c if i == 1 else (c << 4 if i & 1 == 0 else c)
        i += 1
    return 1 if total & 0xFF == 0x55 else 0




@micropython.viper
def store(block, raw, ctx) -> int:
    """Store a split block's fields into the dict `raw` (name -> value);
    ctx = (label table, NAMES, value per status, missing, len(NAMES):
    vedirect_fields).
    block._cache says per label what its parser stored last in that dict
    (status, 255 = nothing known; the number), valid while the dict is the
    same and keeps its size (else it starts over here). Numbers, "---" and
    ON/OFF that differ from it are stored here; text is compared with the
    bytes the dict holds. Text that changed or is new, unknown labels and
    numbers too wide for a word are listed in the cache's todo for the
    caller. Returns (fields changed) * 64 + (fields listed)."""
    c = block._cache
    cs = ptr8(c[2])
    nlab = int(ctx[4])  # len() is a global lookup and a call: ~45 ns
    size = int(len(raw))
    if c[0] is not raw or int(c[1]) != size:
        k = 0
        while k < nlab:
            cs[k] = 255
            k += 1
        c[0] = raw
    b = ptr8(block._buf)
    o = ptr16(block._offs)
    en = ptr8(block._ent)
    sb = ptr8(block._st)
    vl = ptr32(block._vals)
    cv = ptr32(c[3])
    td = ptr8(c[4])
    t = ptr8(ctx[0])
    names = ctx[1]
    by_status = ctx[2]
    missing = ctx[3]
    kd = _HT_SLOTS + 2 * nlab  # each label's kind << 4 | decimals
    count = int(block.count)
    sign = 1
    sign <<= 31  # made at run time: the literal 2**31 is no small int on a 32-bit port (an object)
    m = 0
    changed = 0
    i = 0
    while i < count:
        k = int(en[i])
        s = int(sb[i])
        if k == 255:
            td[m] = i
            m += 1
        elif s == _ST_WIDE:
            same = 0
            if int(cs[k]) == _ST_WIDE and int(t[kd + k]) >> 4 == 3:
                # text this parser stored in this dict: compare with it (a
                # KeyError or TypeError here: another hand changed the dict,
                # vedirect_fields.update starts the cache over)
                old = raw[names[k]]
                vs = int(o[3 * i + 1]) + 1
                n = int(o[3 * i + 2]) - vs
                if int(len(old)) == n:
                    p = ptr8(old)
                    same = 1
                    j = 0
                    while same and j < n:
                        if int(p[j]) != int(b[vs + j]):
                            same = 0
                        j += 1
            if not same:  # changed or new text, or a wide number: the caller's
                td[m] = i
                m += 1
        elif int(cs[k]) != s or (s == _ST_INT and cv[k] != vl[i]):
            # numbers compared as 32-bit patterns: a ptr32 load is unsigned
            # (on a 64-bit host it zero-extends: the sign is put back below)
            fresh = int(cs[k]) == 255
            cs[k] = s
            cv[k] = vl[i]
            name = names[k]
            # the cache says it changed; only a fresh cache asks the dict
            old = raw.get(name, missing) if fresh else missing
            if fresh and old is missing:
                size += 1  # a new key (the cache is fresh for every new one)
            if s == _ST_INT:
                x = int(vl[i])
                raw[name] = x | (0 - (x & sign))
            else:
                raw[name] = by_status[s]
            if not fresh or old != raw[name]:
                changed += 1
        i += 1
    c[1] = size
    return changed * 64 + m


# The parser's scan state and counters, one array('i') shared with
# vedirect.Parser (the kernel counts: a store to an attribute of a class
# with properties costs ~0.3 us in MicroPython, as much as a block's scan):
_SV_STATE = const(0)  # S_* below
_SV_RESUME = const(1)  # state to return to after a HEX frame
_SV_P = const(2)  # first byte not yet scanned
_SV_END = const(3)  # bytes held in the buffer
_SV_HEXLEN = const(4)  # bytes of the HEX frame so far
_SV_BYTES_LO = const(5)  # counter: bytes fed, mod 2**30 (a word on every port)
_SV_HEX_BAD = const(6)  # counter: HEX frames cut short or too long
_SV_OVERFLOWS = const(7)  # counter: blocks dropped for their size
_SV_MAX_BLOCK = const(8)  # in: text bytes one block may hold
_SV_IN = const(9)  # bytes of the caller's data taken so far (0: a new feed)
_SV_CAP = const(10)  # in: len(buf)
_SV_MAX_HEX = const(11)  # in: len(frame)
_SV_BYTES_HI = const(12)  # counter: bytes fed // 2**30
_SV_HEX_OK = const(13)  # counter: HEX frames whose check byte holds
_SV_WANT_HEX = const(14)  # in: 1 if good HEX frames go to the caller (_EV_HEX)
_SV_BLOCKS = const(15)  # counter: good blocks handed out
_SV_SIZE = const(16)
_MAX_FEED = const(128)  # bytes taken into the buffer per scan step (= vedirect._MAX_FEED)

_S_SYNC = const(0)  # discarding until the first \r\n (start-up, after an error)
_S_TEXT = const(1)  # inside a block
_S_HEX = const(2)  # inside a HEX frame
_S_HEX_SKIP = const(3)  # HEX frame too long: discard to its '\n'

_EV_MORE = const(0)  # all bytes scanned: feed more
_EV_HEX = const(2)  # a whole HEX frame is in the frame buffer (sv[_SV_HEXLEN] bytes)


@micropython.viper
def remove(buf, a: int, e: int, end: int) -> int:
    """Drop buf[a:e] by moving buf[e:end] down; the new end."""
    b = ptr8(buf)
    if a < e and e < end:
        i = 0
        while i < end - e:
            b[a + i] = b[e + i]
            i += 1
    return end - (e - a)


@micropython.viper
def feed(parser, data, length: int) -> int:
    """Take data[:length] (all of it if length < 0) into parser._buf, at
    most _MAX_FEED bytes at a time, and scan them in the state
    parser._state holds until all are scanned (_EV_MORE) or a good HEX
    frame is complete and wanted (_EV_HEX): the caller takes it and calls
    again with the same data. Each block whose checksum byte arrives is
    split here (split()) and goes to parser._done(split's result, length)
    -> good. HEX frames are cut out of the text into parser._hex (they are
    not part of the text checksum); in TEXT state buf[0:p] is the block so
    far."""
    buf = parser._buf
    frame = parser._hex
    b = ptr8(buf)
    d = ptr8(data)
    hx = ptr8(frame)
    v = ptr32(parser._state)
    n = int(len(data))
    if length >= 0 and length < n:
        n = length
    i = int(v[_SV_IN])
    if i == 0:  # a new feed (a HEX frame's return leaves i > 0): count it
        i = int(v[_SV_BYTES_LO]) + n
        wrap = 1
        wrap <<= 30  # made at run time: 2**30 is no small int on a 32-bit port
        if i >= wrap:
            i -= wrap
            v[_SV_BYTES_HI] = int(v[_SV_BYTES_HI]) + 1
        v[_SV_BYTES_LO] = i
        i = 0
    elif i > n:
        i = n
    status = int(v[_SV_STATE])
    resume = int(v[_SV_RESUME])
    p = int(v[_SV_P])
    end = int(v[_SV_END])
    hn = int(v[_SV_HEXLEN])
    max_block = int(v[_SV_MAX_BLOCK])
    cap = int(v[_SV_CAP])  # read once: len() is a call
    max_hex = int(v[_SV_MAX_HEX])
    ev = _EV_MORE
    while True:
        if p >= end:
            if i >= n:
                break
            m = n - i
            if m > _MAX_FEED:
                m = _MAX_FEED
            if end + m > cap:
                # cannot happen (the scan keeps the end <= max_block); never
                # write past the buffer
                v[_SV_OVERFLOWS] = int(v[_SV_OVERFLOWS]) + 1
                status = _S_SYNC
                end = 0
                p = 0
            q = 0
            while q < m:
                b[end + q] = d[i + q]
                q += 1
            i += m
            end += m
            continue
        if status >= _S_HEX:
            e = p
            while e < end and int(b[e]) != 10:
                e += 1
            found = e < end
            stop = e + 1 if found else end
            r = p
            while r < stop and int(b[r]) != 13:
                r += 1
            if r < stop:
                # A HEX frame never holds \r: the frame was cut short
                # (lost '\n', line noise) and text resumes here.
                v[_SV_HEX_BAD] = int(v[_SV_HEX_BAD]) + 1
                hn = 0
                end = int(remove(buf, p, r, end))
                status = resume
                continue
            if status == _S_HEX:
                k = stop - p
                if hn + k <= max_hex:
                    q = 0
                    while q < k:
                        hx[hn + q] = b[p + q]
                        q += 1
                    hn += k
                else:
                    status = _S_HEX_SKIP
            end = int(remove(buf, p, stop, end))
            if found:
                good = 0
                if status == _S_HEX:
                    good = int(hex_ok(frame, hn))
                status = resume
                if not good:
                    v[_SV_HEX_BAD] = int(v[_SV_HEX_BAD]) + 1
                else:
                    v[_SV_HEX_OK] = int(v[_SV_HEX_OK]) + 1
                    if int(v[_SV_WANT_HEX]):
                        ev = _EV_HEX  # the caller takes it, then sets _SV_HEXLEN 0
                        break
                hn = 0
            continue
        if status == _S_SYNC:
            k = -1
            j = p - 1 if p > 0 else 0
            while j + 1 < end:
                if int(b[j]) == 13 and int(b[j + 1]) == 10:
                    k = j
                    break
                j += 1
            h = -1
            j = p
            while j < end and (k < 0 or j < k):
                if int(b[j]) == 58:
                    h = j
                    break
                j += 1
            if h >= 0:
                # a \r right before the frame may pair with a \n after it
                # (HEX frame between \r and \n at a block start): keep it
                keep = 1 if h > 0 and int(b[h - 1]) == 13 else 0
                end = int(remove(buf, 0, h - keep, end))
                if keep:
                    b[0] = 13
                p = keep
                status = _S_HEX
                resume = _S_SYNC
                continue
            if k < 0:
                # keep a trailing \r: it may pair with the next \n
                if int(b[end - 1]) == 13:
                    b[0] = 13
                    end = 1
                else:
                    end = 0
                p = end
                continue
            end = int(remove(buf, 0, k, end))
            status = _S_TEXT
            p = 2
            continue
        # TEXT: the next ':' (a HEX frame) or the checksum byte
        h = -1
        csb = end + 1
        j = p - 11 if p > 11 else 0
        while j < end:
            c = int(b[j])
            if c == 58 and j >= p:
                h = j
                break
            # "\r\nChecksum\t" = 13 10 67 104 101 99 107 115 117 109 9
            if c == 13 and j + 11 <= end and int(b[j + 1]) == 10 and int(b[j + 2]) == 67 \
                    and int(b[j + 3]) == 104 and int(b[j + 4]) == 101 and int(b[j + 5]) == 99 \
                    and int(b[j + 6]) == 107 and int(b[j + 7]) == 115 and int(b[j + 8]) == 117 \
                    and int(b[j + 9]) == 109 and int(b[j + 10]) == 9:
                csb = j + 11
                break
            j += 1
        if h >= 0:
            # HEX frame inside the block: text before it stays, unless the
            # block is already too long (fixed memory on every path)
            if h > max_block:
                v[_SV_OVERFLOWS] = int(v[_SV_OVERFLOWS]) + 1
                end = int(remove(buf, 0, h, end))
                h = 0
                resume = _S_SYNC
            else:
                resume = _S_TEXT
            p = h
            status = _S_HEX
            continue
        if csb < end:
            # the block is buf[0:csb + 1]: split here, then _done() hands
            # it out or rescues what it can (a call back into Python: no
            # return to the caller per block)
            r = int(split(buf, 0, csb + 1, parser._offs, parser._ent, parser._st, parser._vals, parser._seen,
                          parser._tab, parser._first, parser._first_len))
            good = int(parser._done(r, csb + 1))
            if good:
                v[_SV_BLOCKS] = int(v[_SV_BLOCKS]) + 1
            if not good and int(b[csb]) == 13:
                # a byte lost in this block made the next block's \r its
                # "checksum": leave it for the next block's \r\n
                end = int(remove(buf, 0, csb, end))
                p = 1
            else:
                end = int(remove(buf, 0, csb + 1, end))
                p = 0
            status = _S_SYNC
            continue
        if end > max_block:
            # No Checksum within the maximum: drop, keep the last byte
            v[_SV_OVERFLOWS] = int(v[_SV_OVERFLOWS]) + 1
            end = int(remove(buf, 0, end - 1, end))
            p = 1
            status = _S_SYNC
            continue
        p = end
    v[_SV_STATE] = status
    v[_SV_RESUME] = resume
    v[_SV_P] = p
    v[_SV_END] = end
    v[_SV_HEXLEN] = hn
    v[_SV_IN] = i if ev != _EV_MORE else 0
    return ev
