# Compact binary records for the flash log (lib/flashlog.py): per-minute
# aggregates of every device, plus event and counter records.
#
# Budget: 1.5 MB for 30 days of 1-minute data from 4 devices is 36 bytes a
# minute for all four, and the log spends 12 bytes on each record. So one
# log record carries a block of up to per_record (default 5) minutes of every
# device, and values are residuals coded with adaptive Rice codes (LOCO-I
# style, one adaptive parameter per value stream):
#   analog field: avg - previous avg, (avg-min) - previous (avg-min),
#                 (max-avg) - previous (max-avg), each zigzag + Rice(k),
#                 k from the running mean of that stream's recent codes
#   last-value field (CE, SOC, TTG, H20 ...): value - previous, Rice(k)
#   enum/bool states: 1 bit per device "none changed", else per state 1 bit
#                 "changed" and Exp-Golomb of the delta
# A flat analog value costs 3 bits a minute, a device whose states did not
# change 1 bit, a minute where no device or field came or went 1 bit.
# Delta minutes depend on the previous minute back to a key frame (written
# every key_every minutes and at every boot); a key frame is self-contained
# (it carries the layout: device names and field codes). To decode from seq S
# start at flashlog.find_before(S, T_KEY) - replay() does that.
#
# Values are scaled integers at a fixed resolution per field (res() below):
# what comes back from decode is exact to that resolution.
#
# Record types (the flashlog type byte): T_KEY, T_DELTA, T_EVENT, T_COUNTERS,
# T_VALUES.
# T_KEY block:   key frame | u8 n | bitstream of n delta minutes
# T_DELTA block: u8 frame_no (mod 256: a missing block is detected) | u8 n |
#                bitstream of n delta minutes
# Key frame: u32 t | u8 ndev | per device: u8 len, name, u8 nfields, per field
#   u8 code (255: u8 len, name, u8 decimals | kind << 4) | per device: u8
#   present, then per field varint zz(avg)+1 (0 = absent), and for analog
#   fields varint avg-min, varint max-avg.
# Delta minute (bits, MSB first, blocks padded to a byte at the end only):
#   EG0 zz(dt-60) | 1 bit "all devices present, no field came or went" |
#   per device: (unless that bit: 1 bit present; if present 1 bit "field
#   presence changed", then 1 bit per field) | 1 bit "a state changed" if the
#   device has enum/bool fields | the codes of the present fields in layout
#   order.
#
# Length: one binary format's encoder (key and delta frames, Rice coding, the
# field table); its decoder is records_dec.py.
import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


T_KEY = const(16)
T_DELTA = const(17)
T_EVENT = const(18)
T_COUNTERS = const(19)
T_VALUES = const(20)

_MAX_FRAME = const(1000)  # largest payload (fits flashlog.max_payload)
_MAX_DEV = const(16)  # devices in one frame
_MAX_FIELDS = const(40)  # fields of one device
_MAX_NAME = const(32)  # bytes of a device, field or event name
_QMAX = const(20)  # longest unary run before the raw 32-bit escape
_WIN = const(16)  # Rice adaptation window (frames)
_ESC = const(255)

KIND_ANALOG = const(0)  # min/avg/max
KIND_STATE = const(1)  # last value
KIND_BOOL = const(2)  # last value, decoded as True/False
KIND_LAST = const(3)  # numeric last value that moves often (CE, SOC, TTG, H20)

# Field codes and resolutions, ONE string (no tuple of names built at import:
# RAM): "|name=DK|..." where D is the decimals and K the kind of the field,
# and a field's position in the string (its index counting from 0) is its
# code, what goes to flash. Append only: never reorder or remove, or old
# logs decode to the wrong names. code_of()/code_name() translate.
# Resolution rule: volts 0.01 V, amps 0.1 A, watts/VA 1, percent 0.1 %,
# Ah 0.1 Ah, kWh 0.01 kWh, degC 0.1, minutes/seconds 1 (AC_OUT_V: 0.1 V is
# plenty for mains); enums, bit masks and ids are states (last value);
# energy and history counters (H*) are "last" values too: a minute's
# min/avg/max of a counter says nothing its last value does not, and CE, SOC
# and TTG are integrals that move less than one step a minute.
_TAB = (
    "|V=20|V2=20|V3=20|VS=20|VM=20|DM=10|VPV=20|PPV=00|I=10|I2=10|I3=10|IL=10|LOAD=02|"
    "T=10|P=00|CE=13|SOC=13|TTG=03|Alarm=02|Relay=02|AR=01|OR=01|WARN=01|H1=13|H2=13|"
    "H3=13|H4=03|H5=03|H6=13|H7=23|H8=23|H9=03|H10=03|H11=03|H12=03|H13=03|H14=03|"
    "H15=23|H16=23|H17=23|H18=23|H19=23|H20=23|H21=01|H22=23|H23=01|ERR=01|CS=01|"
    "MODE=01|AC_OUT_V=10|AC_OUT_I=10|AC_OUT_S=00|MPPT=01|MON=01|DC_IN_V=20|"
    "DC_IN_I=10|DC_IN_P=00|PID=01|uptime=03|ac_out_power=00|ac_in_power=00|"
    "ac_in_active=01|dc_power=00|ac_current=10|bms_flags=01|error_flags=01|cell_1=20|"
    "cell_2=20|cell_3=20|cell_4=20|cell_5=20|cell_6=20|cell_7=20|cell_8=20|"
    "balancer_status=01|output_state=01|bms_error=01|vebus_error=01|alarm_state=01|"
    "error_code=01|installation_power=00|irradiance=00|cell_temperature=10|"
    "sensor_battery_voltage=20|time_since_sun=03|HSDS=01|"
)


def _find(name):
    if not isinstance(name, str) or "|" in name or "=" in name:
        return -1
    return _TAB.find("|" + name + "=")


def code_of(name):
    """Field code of a name (0..254), or -1 when it has none (escaped)."""
    i = _find(name)
    return -1 if i < 0 else _TAB.count("|", 0, i)


def code_name(code):
    """Name of a field code, or None."""
    i = 0
    for _ in range(code):
        i = _TAB.find("|", i + 1)
    if code < 0 or i < 0 or i >= len(_TAB) - 1:
        return None
    return _TAB[i + 1 : _TAB.find("=", i)]


def res(name):
    """(decimals, kind) used for a field; unknown names: 2 decimals, analog."""
    i = _find(name)
    if i < 0:
        return 2, KIND_ANALOG
    i += len(name) + 2
    return ord(_TAB[i]) - 48, ord(_TAB[i + 1]) - 48


_POW10 = (1, 10, 100, 1000, 10000)


def to_scaled(v, dec):
    """SI value -> integer at 10**-dec (None stays None; bad input -> None)."""
    if v is None:
        return None
    if v is True:
        return 1
    if v is False:
        return 0
    try:
        x = v * _POW10[dec]
        return int(x + 0.5) if x >= 0 else -int(-x + 0.5)
    except (TypeError, ValueError, OverflowError):
        return None


def _zz(v):
    return v << 1 if v >= 0 else ((-v) << 1) - 1


# ------------------------------------------------------------ byte varints
def _put_varint(buf, o, u):
    while u >= 0x80:
        buf[o] = (u & 0x7F) | 0x80
        u >>= 7
        o += 1
    buf[o] = u
    return o + 1


# ------------------------------------------------------------------- bits
class _BitW:
    # MSB-first bit writer into a caller's bytearray; the accumulator never
    # holds more than 23 bits (a small int on a 32-bit port).
    def __init__(self, buf, o):
        self.buf = buf
        self.o = o
        self.acc = 0
        self.nb = 0
        self.over = False

    def put(self, v, k):
        while k > 15:
            k -= 15
            self.put(v >> k, 15)
        if not k:
            return
        self.acc = (self.acc << k) | (v & ((1 << k) - 1))
        self.nb += k
        while self.nb >= 8:
            self.nb -= 8
            if self.o < len(self.buf):
                self.buf[self.o] = (self.acc >> self.nb) & 0xFF
                self.o += 1
            else:
                self.over = True
        self.acc &= (1 << self.nb) - 1

    def ones(self, q):
        while q > 15:
            self.put(0x7FFF, 15)
            q -= 15
        self.put((1 << q) - 1, q)

    def end(self):
        if self.nb:
            self.put(0, 8 - self.nb)
        return self.o


def _rice_put(w, u, k):
    if u >> 32:
        raise ValueError("residual too large")  # the encoder writes a key instead
    q = u >> k
    if q >= _QMAX:
        w.ones(_QMAX)
        w.put(u >> 16, 16)
        w.put(u & 0xFFFF, 16)
        return
    w.ones(q)
    w.put(0, 1)
    if k:
        w.put(u, k)


def _eg_put(w, u):
    # Exp-Golomb order 0: 0 -> "0", 1..2 -> "10x", 3..6 -> "110xx", ...;
    # a prefix of _QMAX ones escapes to 32 raw bits (u < 2**32, checked by
    # the caller).
    u += 1
    n = 0
    while (u >> (n + 1)) > 0:
        n += 1
    if n >= _QMAX:
        w.ones(_QMAX)
        w.put((u - 1) >> 16, 16)
        w.put((u - 1) & 0xFFFF, 16)
        return
    w.ones(n)
    w.put(0, 1)
    w.put(u, n)


# ------------------------------------------------------------- minute frames
class _Layout:
    # Flattened description of the devices: names, codes, decimals, kinds.
    def __init__(self, devices):
        self.names = []
        self.fields = []  # per device: list of field names
        self.dec = bytearray()  # flat, one per (device, field): a byte each (RAM)
        self.kind = bytearray()
        self.start = []  # flat index of each device's first field
        self.nstate = []  # enum/bool fields of each device (one "moved" bit)
        n = 0
        for dname, fnames in devices:
            self.names.append(dname)
            self.fields.append(list(fnames))
            self.start.append(n)
            ns = 0
            for f in fnames:
                d, k = res(f)
                self.dec.append(d)
                self.kind.append(k)
                ns += k == KIND_STATE or k == KIND_BOOL
                n += 1
            self.nstate.append(ns)
        self.n = n

    def recount(self):
        # after escaped fields got their kinds from a key frame
        for d in range(len(self.names)):
            j = self.start[d]
            self.nstate[d] = 0
            for i in range(len(self.fields[d])):
                k = self.kind[j + i]
                self.nstate[d] += k == KIND_STATE or k == KIND_BOOL


class _State:
    # Prediction state shared by encoder and decoder (must evolve identically).
    def __init__(self, n):
        self.av = [0] * n
        self.lo = [0] * n
        self.hi = [0] * n
        self.pres = bytearray(n)
        self.A = [4] * (3 * n)  # Rice: sum of recent codes, per stream
        self.N = bytearray(b"\x01" * (3 * n))  # counts stay below _WIN (16): a byte each

    def reset(self):
        for i in range(len(self.av)):
            self.av[i] = self.lo[i] = self.hi[i] = 0
            self.pres[i] = 0
        for i in range(len(self.A)):
            self.A[i] = 4
            self.N[i] = 1

    def k(self, s):
        a = self.A[s]
        nn = self.N[s]
        k = 0
        while (nn << k) < a and k < 24:
            k += 1
        return k

    def upd(self, s, u):
        self.A[s] += u
        self.N[s] += 1
        if self.N[s] >= _WIN:
            self.A[s] = (self.A[s] + 1) >> 1
            self.N[s] >>= 1


def _valid_name(s):
    return isinstance(s, str) and 0 < len(s.encode()) <= _MAX_NAME


def _rice_bits(u, k):
    q = u >> k
    return _QMAX + 32 if q >= _QMAX else q + 1 + k


def _eg_bits(u):
    u += 1
    n = 0
    while (u >> (n + 1)) > 0:
        n += 1
    return _QMAX + 32 if n >= _QMAX else 2 * n + 1


class MinuteEncoder:
    """Encode minutes of every device into log records of up to per_record
    minutes each (one record per block amortises the log's 12-byte record
    overhead; the block is also what a power cut can lose before flush).

    layout: list of (device name, list of field names), fixed for the life of
    the encoder (make a new one when the config changes).
    add(t, rows) -> list of finished blocks [(rtype, payload), ...], usually
    empty, at most two: append each to the log in order.
    take() -> the open block as (rtype, payload), or None:
    call it before flushing the log (shutdown, going offline) so nothing waits
    in the encoder. t: Unix seconds (int). rows: one entry per device, None
    when the device sent nothing this minute, else one entry per field: for
    analog fields (min, avg, max) scaled integers (Agg.take() gives those) or
    None, for state fields a scaled integer or None. A row that does not fit
    the layout is refused and counted (.refused); never raises."""

    def __init__(self, layout, key_every=60, per_record=5):
        ok = len(layout) <= _MAX_DEV
        for d, fs in layout:
            ok = ok and _valid_name(d) and len(fs) <= _MAX_FIELDS
            for f in fs:
                ok = ok and _valid_name(f)
        self.ok = ok  # False: every add() is refused
        self.L = _Layout(layout if ok else ())
        self.key_every = max(1, min(255, key_every))
        self.per_record = max(1, min(60, per_record))
        self._buf = bytearray(_MAX_FRAME)
        self._st = None
        self._stobj = None  # the _State object _st points to when set
        self._t = 0
        self._fno = 0  # frames since the key frame
        self._w = None  # bit writer of the open block, None = no block
        self._rtype = 0
        self._nat = 0  # offset of the frame-count byte of the open block
        self._n = 0  # delta frames in the open block
        self._nframes = 0  # frames (key included) in the open block
        self.refused = 0
        self.keys = 0
        self.deltas = 0

    def force_key(self):
        """Next minute starts a block with a key frame (after a config or
        clock change; the firmware also does it at boot)."""
        self._st = None

    def add(self, t, rows):
        out = []
        if not self.ok or not isinstance(t, int) or len(rows) != len(self.L.names):
            self.refused += 1
            return out
        bits = -1
        try:
            if self._st is not None and self._fno < self.key_every and 0 <= t - self._t < 0x10000:
                bits = self._delta_bits(t, rows)  # validates the rows, changes nothing
        except (TypeError, ValueError, IndexError, OverflowError):
            self.refused += 1  # bad row: the open block and the state stay as they were
            return out
        if bits < 0:  # key frame: always the start of a new block
            self._take_into(out)
            try:
                self._key(t, rows)
            except (TypeError, ValueError, IndexError, OverflowError):
                self.refused += 1
                self._st = None  # next minute tries a key frame again
                return out
            self.keys += 1
        else:
            if self._w is not None and (self._w.o + (bits + 7) // 8 + 1 > _MAX_FRAME):
                self._take_into(out)
            if self._w is None:
                self._open(T_DELTA)
            self._delta(t, rows)
            self.deltas += 1
        self._nframes += 1
        if self._nframes >= self.per_record:
            self._take_into(out)
        return out

    def _take_into(self, out):
        r = self.take()
        if r is not None:
            out.append(r)

    def take(self):
        w = self._w
        if w is None:
            return None
        self._w = None
        o = w.end()
        self._buf[self._nat] = self._n
        return self._rtype, bytes(self._buf[:o])

    def _open(self, rtype, o=0):
        b = self._buf
        if rtype == T_DELTA:
            b[0] = self._fno & 0xFF  # the decoder checks no frame is missing
            o = 1
        self._rtype = rtype
        self._nat = o
        self._n = 0
        self._nframes = 0
        self._w = _BitW(b, o + 1)

    def _key(self, t, rows):
        L = self.L
        b = self._buf
        struct.pack_into("<IB", b, 0, t & 0xFFFFFFFF, len(L.names))
        o = 5
        for d in range(len(L.names)):
            nb = L.names[d].encode()
            b[o] = len(nb)
            b[o + 1 : o + 1 + len(nb)] = nb
            o += 1 + len(nb)
            b[o] = len(L.fields[d])
            o += 1
            for f in L.fields[d]:
                c = code_of(f)
                if c >= 0:
                    b[o] = c
                    o += 1
                else:
                    fb = f.encode()
                    b[o] = _ESC
                    b[o + 1] = len(fb)
                    b[o + 2 : o + 2 + len(fb)] = fb
                    o += 2 + len(fb)
                    dk = res(f)
                    b[o] = dk[0] | (dk[1] << 4)
                    o += 1
            if o > _MAX_FRAME - 64:
                raise ValueError("layout too large")
        st = self._stobj  # one state object per encoder, reset at each key frame:
        if st is None:  # no allocation every key_every minutes on a fragmented heap
            st = self._stobj = _State(L.n)
        else:
            st.reset()
        for d in range(len(L.names)):
            row = rows[d]
            b[o] = 0 if row is None else 1
            o += 1
            if row is None:
                continue
            if len(row) != len(L.fields[d]):
                raise ValueError("row")
            j = L.start[d]
            for v in row:
                if o > _MAX_FRAME - 40:
                    raise ValueError("frame too large")
                if v is None:
                    b[o] = 0
                    o += 1
                elif L.kind[j] == KIND_ANALOG:
                    mn, av, mx = v
                    if mn > av or av > mx:
                        raise ValueError("min > avg or avg > max")
                    o = _put_varint(b, o, _zz(av) + 1)
                    o = _put_varint(b, o, av - mn)
                    o = _put_varint(b, o, mx - av)
                    st.av[j], st.lo[j], st.hi[j], st.pres[j] = av, av - mn, mx - av, 1
                else:
                    o = _put_varint(b, o, _zz(int(v)) + 1)
                    st.av[j], st.pres[j] = int(v), 1
                j += 1
        self._st = st
        self._t = t
        self._fno = 1
        self._open(T_KEY, o)

    def _all_same(self, rows):
        # True: every device present, no field appeared or vanished.
        L = self.L
        st = self._st
        for d in range(len(L.names)):
            row = rows[d]
            if row is None:
                return False
            j0 = L.start[d]
            for i in range(len(row)):
                if (row[i] is not None) != (st.pres[j0 + i] == 1):
                    return False
        return True

    def _delta_bits(self, t, rows):
        """Exact size in bits of the delta minute, without touching any
        state; -1 when only a key frame can carry it (residual too large)."""
        L = self.L
        st = self._st
        for d in range(len(L.names)):
            if rows[d] is not None and len(rows[d]) != len(L.fields[d]):
                raise ValueError("row")
        n = _eg_bits(_zz(t - self._t - 60)) + 1
        same = self._all_same(rows)
        for d in range(len(L.names)):
            row = rows[d]
            if not same:
                n += 1
                if row is None:
                    continue
                n += 1
                j0 = L.start[d]
                for i in range(len(row)):
                    if (row[i] is not None) != (st.pres[j0 + i] == 1):
                        n += len(row)
                        break
            j0 = L.start[d]
            sbits = 0
            for i in range(len(row)):
                v = row[i]
                j = j0 + i
                if v is None:
                    continue
                kd = L.kind[j]
                s = 3 * j
                if kd == KIND_ANALOG:
                    mn, av, mx = v
                    if mn > av or av > mx:
                        raise ValueError("min > avg or avg > max")
                    for u, tgt in ((_zz(av - st.av[j]), 0), (_zz(av - mn - st.lo[j]), 1), (_zz(mx - av - st.hi[j]), 2)):
                        if u >> 32:
                            return -1
                        n += _rice_bits(u, st.k(s + tgt))
                elif kd == KIND_LAST:
                    u = _zz(int(v) - st.av[j])
                    if u >> 32:
                        return -1
                    n += _rice_bits(u, st.k(s))
                else:
                    sbits += 1
                    if int(v) != st.av[j]:
                        u = _zz(int(v) - st.av[j]) - 1
                        if u >> 32:
                            return -1
                        sbits += _eg_bits(u)
            if L.nstate[d]:
                n += 1 + (sbits if self._states_moved(d, row) else 0)
        return n

    def _states_moved(self, d, row):
        L = self.L
        st = self._st
        j0 = L.start[d]
        for i in range(len(row)):
            j = j0 + i
            k = L.kind[j]
            if row[i] is not None and (k == KIND_STATE or k == KIND_BOOL) and int(row[i]) != st.av[j]:
                return True
        return False

    def _delta(self, t, rows):
        # Only called after _delta_bits() accepted the minute: cannot fail.
        L = self.L
        st = self._st
        w = self._w
        _eg_put(w, _zz(t - self._t - 60))
        same = self._all_same(rows)
        w.put(1 if same else 0, 1)
        for d in range(len(L.names)):
            row = rows[d]
            j0 = L.start[d]
            if not same:
                w.put(0 if row is None else 1, 1)
                if row is None:
                    continue
                moved = False
                for i in range(len(row)):
                    if (row[i] is not None) != (st.pres[j0 + i] == 1):
                        moved = True
                w.put(1 if moved else 0, 1)
                if moved:
                    for i in range(len(row)):
                        w.put(0 if row[i] is None else 1, 1)
            smoved = False
            if L.nstate[d]:
                smoved = self._states_moved(d, row)
                w.put(1 if smoved else 0, 1)
            for i in range(len(row)):
                v = row[i]
                j = j0 + i
                if v is None:
                    st.pres[j] = 0
                    continue
                st.pres[j] = 1
                kd = L.kind[j]
                s = 3 * j
                if kd == KIND_ANALOG:
                    mn, av, mx = v
                    lo = av - mn
                    hi = mx - av
                    for u, tgt in ((_zz(av - st.av[j]), 0), (_zz(lo - st.lo[j]), 1), (_zz(hi - st.hi[j]), 2)):
                        _rice_put(w, u, st.k(s + tgt))
                        st.upd(s + tgt, u)
                    st.av[j], st.lo[j], st.hi[j] = av, lo, hi
                elif kd == KIND_LAST:
                    v = int(v)
                    u = _zz(v - st.av[j])
                    _rice_put(w, u, st.k(s))
                    st.upd(s, u)
                    st.av[j] = v
                elif smoved:
                    v = int(v)
                    if v == st.av[j]:
                        w.put(0, 1)
                    else:
                        w.put(1, 1)
                        _eg_put(w, _zz(v - st.av[j]) - 1)
                        st.av[j] = v
        self._t = t
        self._fno += 1
        self._n += 1
