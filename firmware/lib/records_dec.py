# Decoder side of records.py (host tools, `vegw logs`, tests): minute
# decoder, value sets, events, replay, the code listing. Kept out of
# records.py so the gateway, which only encodes, does not hold this code in
# its ~110 KB heap: what decodes imports this module (records does not
# import it, so there is no cycle).
#
# Length: one format's decoder (minute frames, value sets, events, replay), host
# side only; a tenth of it describes the format.
import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from records import (  # noqa: F401
    code_name, code_of, KIND_ANALOG, KIND_BOOL, KIND_LAST, KIND_STATE, T_COUNTERS, T_DELTA, T_EVENT,
    T_KEY, T_VALUES, _Layout, _State, _POW10, _TAB, _put_varint, _valid_name, _zz, res, to_scaled,
)

# same values as records.py (its underscore consts are not module attributes
# on MicroPython)
_MAX_FRAME = const(1000)
_MAX_FIELDS = const(40)
_MAX_NAME = const(32)
_QMAX = const(20)
_ESC = const(255)


def codes():
    """Every field name with a code, in code order (tests, tools; allocates)."""
    return tuple(e.split("=")[0] for e in _TAB.split("|") if e)


def from_scaled(n, dec, kind=KIND_ANALOG):
    if n is None:
        return None
    if kind == KIND_BOOL:
        return n != 0
    if dec == 0:
        return n
    return n / _POW10[dec]


def _unzz(u):
    return u >> 1 if not u & 1 else -((u + 1) >> 1)


def _get_varint(buf, o):
    u = 0
    sh = 0
    while True:
        b = buf[o]
        o += 1
        u |= (b & 0x7F) << sh
        if not b & 0x80:
            return u, o
        sh += 7
        if sh > 63:
            raise ValueError("varint")


class _BitR:
    def __init__(self, buf, o):
        self.buf = buf
        self.o = o
        self.bit = 0

    def get(self, k):
        v = 0
        for _ in range(k):
            b = self.buf[self.o]  # IndexError on a short frame: caught by decode
            v = (v << 1) | ((b >> (7 - self.bit)) & 1)
            self.bit += 1
            if self.bit == 8:
                self.bit = 0
                self.o += 1
        return v

    def unary(self):
        q = 0
        while q < _QMAX and self.get(1):
            q += 1
        return q


def _rice_get(r, k):
    q = r.unary()
    if q >= _QMAX:
        return (r.get(16) << 16) | r.get(16)
    return (q << k) | r.get(k) if k else q


def _eg_get(r):
    n = r.unary()
    if n >= _QMAX:
        return (r.get(16) << 16) | r.get(16)
    return ((1 << n) | r.get(n)) - 1


class MinuteDecoder:
    """Decode minute records in log order. decode(rtype, payload) -> list of
    minutes, each {"t": unix s, "key": bool, "devices": {name: {field: value}}}
    where an analog value is [min, avg, max] and a state its last value;
    absent devices and fields are left out. Returns None (counted in .bad or
    .orphans) for a malformed record, or a delta block with no key before it
    or after a missing block; never raises."""

    def __init__(self):
        self.L = None
        self._st = None
        self._t = 0
        self._fno = 0
        self.bad = 0
        self.orphans = 0

    def decode(self, rtype, payload):
        try:
            if rtype == T_KEY:
                out = [self._key(payload)]
                o = self._o
            elif rtype == T_DELTA:
                if self._st is None or payload[0] != self._fno & 0xFF:
                    self.orphans += 1
                    self._st = None
                    return None
                out = []
                o = 1
            else:
                self.bad += 1
                return None
            n = payload[o]
            r = _BitR(payload, o + 1)
            for _ in range(n):
                out.append(self._delta(r))
            return out
        except Exception:  # noqa: BLE001 - malformed payload: count, carry on
            self.bad += 1
            self._st = None
            return None

    def _key(self, b):
        t, ndev = struct.unpack_from("<IB", b, 0)
        o = 5
        layout = []
        extra = {}
        for _ in range(ndev):
            n = b[o]
            dname = bytes(b[o + 1 : o + 1 + n]).decode()
            o += 1 + n
            nf = b[o]
            o += 1
            fs = []
            for _ in range(nf):
                c = b[o]
                o += 1
                if c == _ESC:
                    n = b[o]
                    f = bytes(b[o + 1 : o + 1 + n]).decode()
                    o += 1 + n
                    extra[f] = (b[o] & 15, b[o] >> 4)
                    o += 1
                else:
                    f = code_name(c)
                    if f is None:
                        raise ValueError("field code")
                fs.append(f)
            layout.append((dname, fs))
        L = _Layout(layout)
        for f in extra:  # escaped names carry their own resolution
            for d in range(len(L.names)):
                if f in L.fields[d]:
                    j = L.start[d] + L.fields[d].index(f)
                    L.dec[j], L.kind[j] = extra[f]
        L.recount()
        st = _State(L.n)
        out = {}
        for d in range(len(L.names)):
            present = b[o]
            o += 1
            if not present:
                continue
            vals = {}
            j = L.start[d]
            for f in L.fields[d]:
                u, o = _get_varint(b, o)
                if u:
                    av = _unzz(u - 1)
                    st.av[j], st.pres[j] = av, 1
                    if L.kind[j] == KIND_ANALOG:
                        lo, o = _get_varint(b, o)
                        hi, o = _get_varint(b, o)
                        st.lo[j], st.hi[j] = lo, hi
                        vals[f] = self._triple(j, L, av, lo, hi)
                    else:
                        vals[f] = from_scaled(av, L.dec[j], L.kind[j])
                j += 1
            out[L.names[d]] = vals
        self.L = L
        self._st = st
        self._t = t
        self._fno = 1
        self._o = o
        return {"t": t, "key": True, "devices": out}

    def _triple(self, j, L, av, lo, hi):
        d = L.dec[j]
        return [from_scaled(av - lo, d), from_scaled(av, d), from_scaled(av + hi, d)]

    def _delta(self, r):
        L = self.L
        st = self._st
        t = self._t + 60 + _unzz(_eg_get(r))
        same = r.get(1)
        out = {}
        for d in range(len(L.names)):
            j0 = L.start[d]
            nf = len(L.fields[d])
            if not same:
                if not r.get(1):
                    continue
                if r.get(1):
                    for i in range(nf):
                        st.pres[j0 + i] = r.get(1)
            smoved = r.get(1) if L.nstate[d] else 0
            vals = {}
            for i in range(nf):
                j = j0 + i
                if not st.pres[j]:
                    continue
                kd = L.kind[j]
                s = 3 * j
                if kd == KIND_ANALOG:
                    u0 = _rice_get(r, st.k(s))
                    st.upd(s, u0)
                    u1 = _rice_get(r, st.k(s + 1))
                    st.upd(s + 1, u1)
                    u2 = _rice_get(r, st.k(s + 2))
                    st.upd(s + 2, u2)
                    st.av[j] += _unzz(u0)
                    st.lo[j] += _unzz(u1)
                    st.hi[j] += _unzz(u2)
                    vals[L.fields[d][i]] = self._triple(j, L, st.av[j], st.lo[j], st.hi[j])
                    continue
                if kd == KIND_LAST:
                    u = _rice_get(r, st.k(s))
                    st.upd(s, u)
                    st.av[j] += _unzz(u)
                elif smoved and r.get(1):
                    st.av[j] += _unzz(_eg_get(r) + 1)
                vals[L.fields[d][i]] = from_scaled(st.av[j], L.dec[j], kd)
            out[L.names[d]] = vals
        self._t = t
        self._fno += 1
        return {"t": t, "key": False, "devices": out}


# ------------------------------------------------------------ aggregation
# ------------------------------------------------- self-contained value sets
def _put_name(b, o, s):
    nb = s.encode()[:_MAX_NAME]
    b[o] = len(nb)
    b[o + 1 : o + 1 + len(nb)] = nb
    return o + 1 + len(nb)


def _get_name(b, o):
    n = b[o]
    return bytes(b[o + 1 : o + 1 + n]).decode(), o + 1 + n


def encode_values(names, values, t=0):
    """A value set (event detail, counters, a snapshot) as bytes:
    varint t | u8 count | per value: u8 code (255: name) + varint zz+1 (0 =
    None). Scaled with res(); unknown names keep 2 decimals. Values that are
    not numbers are stored as None. At most 40 values."""
    b = bytearray(_MAX_FRAME)
    if not isinstance(t, int) or t < 0:
        t = 0
    o = _put_varint(b, 0, t)
    n = min(len(names), len(values), _MAX_FIELDS)
    b[o] = n
    o += 1
    for i in range(n):
        f = names[i]
        if not _valid_name(f) or o > _MAX_FRAME - 48:
            f = "?"
        c = code_of(f)
        if c >= 0:
            b[o] = c
            o += 1
        else:
            b[o] = _ESC
            o = _put_name(b, o + 1, f)
        v = values[i]
        x = to_scaled(v, res(f)[0]) if isinstance(v, (int, float, bool)) else None
        o = _put_varint(b, o, 0 if x is None else _zz(x) + 1)
    return bytes(b[:o])


def _decode_values_at(b, o):
    t, o = _get_varint(b, o)
    n = b[o]
    o += 1
    out = {}
    for _ in range(n):
        c = b[o]
        o += 1
        if c == _ESC:
            f, o = _get_name(b, o)
        else:
            f = code_name(c)
            if f is None:
                raise ValueError("field code")
        u, o = _get_varint(b, o)
        d, k = res(f)
        out[f] = None if not u else from_scaled(_unzz(u - 1), d, k)
    return t, out, o


def decode_values(buf):
    """(t, {name: value}) from encode_values, or None if malformed."""
    try:
        t, out, _ = _decode_values_at(buf, 0)
        return t, out
    except Exception:  # noqa: BLE001 - never raise on stored bytes
        return None


def encode_event(t, device, name, state, names=(), values=()):
    """Event record (alarm raised/cleared, reboot, config change):
    u8 state | name device | name event | value set (with t)."""
    head = bytearray(2 + 2 * _MAX_NAME + 2)
    head[0] = state & 0xFF
    o = _put_name(head, 1, device if isinstance(device, str) else "?")
    o = _put_name(head, o, name if isinstance(name, str) else "?")
    return bytes(head[:o]) + encode_values(names, values, t)


def decode_event(buf):
    """{"t", "device", "event", "state", "values"} or None if malformed."""
    try:
        state = buf[0]
        device, o = _get_name(buf, 1)
        name, o = _get_name(buf, o)
        t, vals, _ = _decode_values_at(buf, o)
        return {"t": t, "device": device, "event": name, "state": state, "values": vals}
    except Exception:  # noqa: BLE001
        return None


def encode_counters(t, names, values):
    """Counter snapshot (uptime, drops, resets, torn records ...)."""
    return encode_values(names, values, t)


def replay(log, first_seq):
    """Yield (seq, rtype, decoded) for every record of log from first_seq on;
    minute blocks are decoded from the key block before first_seq (blocks
    read only to rebuild the state are not yielded). decoded: a list of
    minutes for T_KEY/T_DELTA, a dict for events, (t, dict) for value sets,
    None when a record could not be decoded (counted by the decoder)."""
    dec = MinuteDecoder()
    start = log.find_before(first_seq, T_KEY) or first_seq
    for seq, rtype, p in log.read_from(start):
        if rtype == T_KEY or rtype == T_DELTA:
            out = dec.decode(rtype, p)
        elif rtype == T_EVENT:
            out = decode_event(p)
        elif rtype == T_COUNTERS or rtype == T_VALUES:
            out = decode_values(p)
        else:
            out = None
        if ((seq - first_seq) & 0xFFFFFFFF) < 0x80000000:  # seq >= first_seq, wrap-safe
            yield seq, rtype, out
