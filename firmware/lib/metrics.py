# Derived metrics from battery monitors (BMV/SmartShunt) and MPPTs: values
# Victron's displays do not show. Each metric is a field (in field_names'
# table), published like any decoded value and usable in alarm rules.
#
# Time is explicit: update(values, now) and values(now), now in seconds (int
# on the board: float32 cannot hold an epoch). Integration is a left Riemann
# sum: the values of a block hold until the next block with the same field;
# an interval longer than max_gap_s (default 60 s, the stale timeout) is a
# gap and counts nowhere ("covered" time excludes it). Daily sums are u32
# integers with the fraction carried (see DayRing), so single-precision floats
# on the ESP32 never add a small increment to a large float sum.
#
# Daily aggregates live in a ring (DayRing) of fixed-size per-day records
# (32 bytes for a battery) that to_bytes()/from_bytes() write and read as
# they are, so the averages survive a reboot.
#
# Length: one job (derived metrics), two families (battery, solar) that share the
# integration, the persistence and the set they live in.
import struct
from array import array

import field_names

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_DAY = const(86400)
_MS_PER_AH = const(3600000)  # 1 Ah = 3 600 000 A*ms
_MJ_PER_KWH = 3600000000  # 1 kWh = 3.6e9 W*ms (bigger than a small int on the board)
_EMPTY = const(0xFFFFFFFF)  # day number of an unused ring record
_MAX_ESTIMATES = const(4)  # capacity estimates kept for the average
_NONE_T = -(1 << 62)  # persisted "no time"

# The metrics' field names, in field_names' table with their unit and Home
# Assistant classes (no tuples built here at import: RAM). battery_fields()
# and solar_fields() build their field_names.info() entries when asked.
_BAT_NAMES = (
    "full_cycles soc_avg_1d soc_avg_7d soc_avg_30d soc_avg_90d ah_in_today ah_out_today "
    "ah_in_yesterday ah_out_yesterday kwh_in_today kwh_out_today kwh_in_yesterday "
    "kwh_out_yesterday since_full mid_dev mid_dev_abs capacity_est capacity_conf soh"
)
_SOL_NAMES = (
    "pv_kwh_today pv_kwh_yesterday load_power load_kwh_today load_kwh_yesterday "
    "charge_power charge_kwh_today"
)


def battery_fields():
    """The battery metrics as field_names.info() tuples (allocates)."""
    return tuple(field_names.info(n) for n in _BAT_NAMES.split())


def solar_fields():
    """The solar metrics as field_names.info() tuples (allocates)."""
    return tuple(field_names.info(n) for n in _SOL_NAMES.split())


def _num(v):
    t = type(v)
    if t is int or t is float:
        return v
    return None


def _round(x):
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


class DayRing:
    """Per-day accumulators: ndays records of day + nfields sums (u32 each),
    record of day d at slot d % ndays. Each record is its own small array
    ('I', 4 + 4*nfields bytes), allocated the first time its slot is written:
    no large contiguous block is needed on a fragmented heap, and reading or
    adding allocates no tuple. Callers add amounts in base units (A*ms, W*ms,
    %*ms, ms); field k stores amount / scales[k] with the fraction carried
    over, so small steady flows are not rounded away. A sum that would pass
    2**32-1 saturates (counted in .saturated)."""

    def __init__(self, scales, ndays):
        self.scales = scales
        self.nf = len(scales)
        self.nd = ndays
        self.rec = 4 + 4 * self.nf
        self.fmt = "<%dI" % (self.nf + 1)
        self.days = [None] * ndays
        self.carry = [0.0] * self.nf
        self.saturated = 0

    def _record(self, day, create):
        i = day % self.nd
        a = self.days[i]
        if a is not None and a[0] == day:
            return a
        if not create:
            return None
        if a is None:
            a = self.days[i] = array("I", [0] * (self.nf + 1))
        else:
            for k in range(1, self.nf + 1):
                a[k] = 0
        a[0] = day
        return a

    def add(self, day, idx, amount):
        sc = self.scales[idx]
        if sc == 1 and type(amount) is int:
            n = amount
        else:
            v = amount / sc + self.carry[idx]
            n = int(v)
            self.carry[idx] = v - n
        if n <= 0:
            return
        a = self._record(day, True)
        s = a[idx + 1] + n
        if s > 0xFFFFFFFF:
            s = 0xFFFFFFFF
            self.saturated += 1
        a[idx + 1] = s

    def get(self, day, idx):
        """Sum of field idx on day, in base units (0 for a day not held)."""
        if day < 0:
            return 0
        a = self._record(day, False)
        if a is None:
            return 0
        return a[idx + 1] * self.scales[idx]

    def total(self, first, last, idx):
        s = 0
        d = first
        while d <= last:
            s += self.get(d, idx)
            d += 1
        return s

    def size(self):
        return self.rec * self.nd

    def to_bytes(self):
        return b"".join(self.pieces())

    def pieces(self):
        """to_bytes() as one small bytes object per day, made as they are
        written: a save needs no large contiguous block (not even a list of
        the pieces) on a fragmented heap."""
        empty = struct.pack("<I", _EMPTY) + bytes(self.rec - 4)
        for a in self.days:
            yield struct.pack(self.fmt, *a) if a is not None else empty

    def load(self, data):
        """Restore from to_bytes() output (length already checked)."""
        days = [None] * self.nd
        for i in range(self.nd):
            rec = struct.unpack_from(self.fmt, data, i * self.rec)
            if rec[0] != _EMPTY:
                days[i] = array("I", rec)
        self.days = days
        self.carry = [0.0] * self.nf


class _Integrator:
    def __init__(self, max_gap_s, day_offset_s):
        self.max_gap_s = max_gap_s
        self.day_offset_s = day_offset_s
        self.prev_t = None

    def day(self, t):
        return int((t + self.day_offset_s) // _DAY)

    def spans(self, now):
        """(day, ms) pieces of the interval since the previous sample, split at
        midnight; empty when it is the first sample or a gap."""
        t0 = self.prev_t
        self.prev_t = now
        out = []
        if t0 is None or now <= t0 or now - t0 > self.max_gap_s:
            return out
        while t0 < now:
            d = self.day(t0)
            end = (d + 1) * _DAY - self.day_offset_s
            seg = now if now < end else end
            out.append((d, _round((seg - t0) * 1000)))
            t0 = seg
        return out


# BatteryMetrics ring fields
_COV = const(0)  # ms covered by fresh current data
_SOC_COV = const(1)  # ms covered by a known SoC
_SOC = const(2)  # SoC (%) * ms
_QIN = const(3)  # charge in, A*ms
_QOUT = const(4)  # charge out, A*ms
_EIN = const(5)  # energy in, W*ms
_EOUT = const(6)  # energy out, W*ms
_BAT_DAYS = const(91)  # 90 days of averages plus today's partial day
_BAT_HDR = "<4sBqqBqqqq"  # magic, version, t_full, q_out_total, cycle active, cyc_q, cyc_cov, cyc_t0, cyc_last
_EST = "<fff"  # capacity estimate: Ah, coverage, mean discharge current


class BatteryMetrics:
    """Metrics of one battery monitor. capacity_ah: nominal capacity (for cycles
    and state of health); nominal_v: 12/24/48 (guessed from V when None);
    v_empty: bank voltage taken as "empty" for the capacity estimate (default
    11.5 V per 12 V nominal)."""

    def __init__(self, capacity_ah=None, nominal_v=None, v_empty=None, max_gap_s=60, day_offset_s=0, full_soc=100):
        self.capacity_ah = capacity_ah
        self.nominal_v = nominal_v
        self.v_empty = v_empty
        self.full_soc = full_soc
        # cov, soc_cov: ms; soc: 0.01 %*s; charge: 10 A*ms (= 10 mAs); energy: W*s
        self.ring = DayRing((1, 1, 10, 10, 10, 1000, 1000), _BAT_DAYS)
        self.integ = _Integrator(max_gap_s, day_offset_s)
        self.i = self.p = self.soc = None  # held values of the last main block
        self.v = self.vm = self.dm = None
        self.h6 = None
        self.t_full = None
        self.q_out_total = 0
        self.cyc_active = False
        self.cyc_q = 0  # net A*ms out since the last full charge
        self.cyc_cov = 0  # ms of it covered by data
        self.cyc_t0 = 0
        self.cyc_last = 0
        self.estimates = []  # [(Ah, coverage, mean discharge A)], newest last
        self._cache_day = None  # see _past()
        self._cache = None

    def clock_set(self, delta):
        """The clock jumped (set after power-on): the jump is a gap, and the
        times held on the unset clock move with it."""
        from timefix import shift

        self.integ.prev_t = None
        self.t_full = shift(self.t_full, delta)
        if self.cyc_active:
            self.cyc_t0 = shift(self.cyc_t0, delta)
            self.cyc_last = shift(self.cyc_last, delta)

    def update(self, values, now):
        """Feed one decoded block of the monitor at time now (s)."""
        get = values.get
        if "I" in values:
            for day, ms in self.integ.spans(now):
                self._account(day, ms)
            self.i = _num(get("I"))
            p = _num(get("P"))
            v = _num(get("V"))
            if p is None and self.i is not None and v is not None:
                p = v * self.i
            self.p = p
            self.soc = _num(get("SOC"))
        if "V" in values:
            self.v = _num(get("V"))
        if "VM" in values:
            self.vm = _num(get("VM"))
        if "DM" in values:
            self.dm = _num(get("DM"))
        h6 = _num(get("H6"))
        if h6 is not None:
            self.h6 = h6
        h9 = _num(get("H9"))
        if h9 is not None and h9 >= 0:
            self.t_full = now - h9
        if self.soc is not None and self.soc >= self.full_soc and "I" in values:
            self.t_full = now
            self.cyc_active = True
            self.cyc_q = 0
            self.cyc_cov = 0
            self.cyc_t0 = now
        elif self.cyc_active and self.v is not None and self.i is not None and self.i < 0:
            self._check_empty(now)
        self.cyc_last = now

    def _account(self, day, ms):
        r = self.ring
        if self._cache_day is not None and day < self._cache_day:
            self._cache_day = None
        r.add(day, _COV, ms)
        if self.i is not None:
            q = self.i * ms
            if q >= 0:
                r.add(day, _QIN, q)
            else:
                r.add(day, _QOUT, -q)
                self.q_out_total += _round(-q)
            if self.cyc_active:
                self.cyc_q -= _round(q)
                self.cyc_cov += ms
        if self.p is not None:
            e = self.p * ms
            if e >= 0:
                r.add(day, _EIN, e)
            else:
                r.add(day, _EOUT, -e)
        if self.soc is not None:
            r.add(day, _SOC_COV, ms)
            r.add(day, _SOC, self.soc * ms)

    def _bank_v(self):
        if self.nominal_v:
            return self.nominal_v
        v = self.v
        return 12 if v < 18 else (24 if v < 36 else 48)

    def _check_empty(self, now):
        v_empty = self.v_empty if self.v_empty is not None else 11.5 * self._bank_v() / 12
        if self.v > v_empty:
            return
        # only at light load: a heavy load sags the voltage long before empty
        if self.capacity_ah and -self.i > self.capacity_ah / 10:
            return
        elapsed_ms = (now - self.cyc_t0) * 1000
        self.cyc_active = False
        if elapsed_ms <= 0 or self.cyc_q <= 0:
            return
        cov = self.cyc_cov / elapsed_ms
        if cov > 1:
            cov = 1.0
        if cov < 0.9:
            return  # too many gaps: the count missed charge
        ah = self.cyc_q / _MS_PER_AH
        mean_i = ah * 3600 / (now - self.cyc_t0)
        self.estimates.append((ah, cov, mean_i))
        if len(self.estimates) > _MAX_ESTIMATES:
            self.estimates.pop(0)

    def _capacity(self):
        n = len(self.estimates)
        if not n:
            return None, None
        ah = cov = 0.0
        heavy = False
        for e in self.estimates:
            ah += e[0]
            cov += e[1]
        ah /= n
        for e in self.estimates:
            if e[2] > ah / 5:  # faster than C/5: Peukert makes the count read low
                heavy = True
        conf = 100.0 * (cov / n) * (n / 3 if n < 3 else 1.0) * (0.8 if heavy else 1.0)
        return ah, conf

    def _past(self, today):
        # Sums over the days before today for the 7/30/90-day windows: they
        # change only when the day rolls over (or a span reaches back into a
        # past day), so they are summed once, not on every values() call.
        if self._cache_day != today:
            r = self.ring
            c = []
            for n in (7, 30, 90):
                c.append((r.total(today - n + 1, today - 1, _SOC_COV), r.total(today - n + 1, today - 1, _SOC)))
            self._cache = c
            self._cache_day = today
        return self._cache

    def values(self, now):
        """Metric fields at time now (None where not yet known)."""
        r = self.ring
        today = self.integ.day(now)
        out = {}
        cov1 = r.get(today, _SOC_COV)
        soc1 = r.get(today, _SOC)
        out["soc_avg_1d"] = soc1 / cov1 if cov1 else None
        past = self._past(today)
        for k, key in ((0, "soc_avg_7d"), (1, "soc_avg_30d"), (2, "soc_avg_90d")):
            cov = past[k][0] + cov1
            out[key] = (past[k][1] + soc1) / cov if cov else None
        y = today - 1
        out["ah_in_today"] = r.get(today, _QIN) / _MS_PER_AH
        out["ah_out_today"] = r.get(today, _QOUT) / _MS_PER_AH
        out["kwh_in_today"] = r.get(today, _EIN) / _MJ_PER_KWH
        out["kwh_out_today"] = r.get(today, _EOUT) / _MJ_PER_KWH
        out["ah_in_yesterday"] = r.get(y, _QIN) / _MS_PER_AH
        out["ah_out_yesterday"] = r.get(y, _QOUT) / _MS_PER_AH
        out["kwh_in_yesterday"] = r.get(y, _EIN) / _MJ_PER_KWH
        out["kwh_out_yesterday"] = r.get(y, _EOUT) / _MJ_PER_KWH
        cap_est, conf = self._capacity()
        cap = self.capacity_ah or cap_est
        drawn = -self.h6 if self.h6 is not None else self.q_out_total / _MS_PER_AH
        out["full_cycles"] = drawn / cap if cap else None
        out["since_full"] = now - self.t_full if self.t_full is not None else None
        md = None
        if self.dm is not None:
            md = self.dm
        elif self.v and self.vm is not None:
            md = 100.0 * (self.v - 2 * self.vm) / self.v
        out["mid_dev"] = md
        out["mid_dev_abs"] = abs(md) if md is not None else None
        out["capacity_est"] = cap_est
        out["capacity_conf"] = conf
        out["soh"] = 100.0 * cap_est / self.capacity_ah if cap_est is not None and self.capacity_ah else None
        return out

    def to_bytes(self):
        """State that must survive a reboot: ring, totals, last full charge,
        capacity cycle and estimates."""
        return b"".join(self.pieces())

    def pieces(self):
        t_full = _NONE_T if self.t_full is None else int(self.t_full)
        head = struct.pack(_BAT_HDR, b"VGMB", 1, t_full, self.q_out_total, 1 if self.cyc_active else 0,
                           self.cyc_q, self.cyc_cov, int(self.cyc_t0), int(self.cyc_last))
        est = struct.pack("<B", len(self.estimates))
        for e in self.estimates:
            est += struct.pack(_EST, e[0], e[1], e[2])
        yield head
        yield est
        yield from self.ring.pieces()

    def from_bytes(self, data):
        """Restore from to_bytes(); False (state untouched) when data is not ours."""
        try:
            hs = struct.calcsize(_BAT_HDR)
            if len(data) < hs + 1:
                return False
            h = struct.unpack_from(_BAT_HDR, data, 0)
            if h[0] != b"VGMB" or h[1] != 1:
                return False
            n = data[hs]
            es = struct.calcsize(_EST)
            if n > _MAX_ESTIMATES or len(data) != hs + 1 + n * es + self.ring.size():
                return False
            est = []
            for k in range(n):
                est.append(struct.unpack_from(_EST, data, hs + 1 + k * es))
            o = hs + 1 + n * es
        except Exception:  # noqa: BLE001 - corrupted flash must not stop boot
            return False
        self.t_full = None if h[2] == _NONE_T else h[2]
        self.q_out_total = h[3]
        self.cyc_active = bool(h[4])
        self.cyc_q, self.cyc_cov, self.cyc_t0, self.cyc_last = h[5], h[6], h[7], h[8]
        self.estimates = est
        self.ring.load(data[o:])
        self._cache_day = None
        self.integ.prev_t = None  # the time across the reboot is a gap
        return True


# SolarMetrics ring fields
_S_COV = const(0)
_S_PV = const(1)  # PV energy, W*ms (from PPV)
_S_LOAD = const(2)  # load output energy, W*ms (V * IL)
_S_CHG = const(3)  # battery-side charge energy, W*ms (V * I)
_SOL_DAYS = const(8)


class SolarMetrics:
    """Metrics of one MPPT: PV energy integrated from PPV (independent of the
    load output), load output power/energy from V * IL, battery-side charge
    power/energy from V * I."""

    def __init__(self, max_gap_s=60, day_offset_s=0):
        self.ring = DayRing((1, 1000, 1000, 1000), _SOL_DAYS)  # ms, then W*s
        self.integ = _Integrator(max_gap_s, day_offset_s)
        self.ppv = self.v = self.i = self.il = None

    def clock_set(self, delta):
        self.integ.prev_t = None  # the jump is a gap

    def update(self, values, now):
        if "PPV" in values:
            for day, ms in self.integ.spans(now):
                self._account(day, ms)
            self.ppv = _num(values.get("PPV"))
        if "V" in values:
            self.v = _num(values.get("V"))
        if "I" in values:
            self.i = _num(values.get("I"))
        if "IL" in values:
            self.il = _num(values.get("IL"))

    def _power(self, a):
        return self.v * a if self.v is not None and a is not None else None

    def _account(self, day, ms):
        r = self.ring
        r.add(day, _S_COV, ms)
        if self.ppv is not None:
            r.add(day, _S_PV, self.ppv * ms)
        p = self._power(self.il)
        if p is not None:
            r.add(day, _S_LOAD, p * ms)
        p = self._power(self.i)
        if p is not None:
            r.add(day, _S_CHG, p * ms)

    def values(self, now):
        r = self.ring
        today = self.integ.day(now)
        return {
            "pv_kwh_today": r.get(today, _S_PV) / _MJ_PER_KWH,
            "pv_kwh_yesterday": r.get(today - 1, _S_PV) / _MJ_PER_KWH,
            "load_power": self._power(self.il),
            "load_kwh_today": r.get(today, _S_LOAD) / _MJ_PER_KWH,
            "load_kwh_yesterday": r.get(today - 1, _S_LOAD) / _MJ_PER_KWH,
            "charge_power": self._power(self.i),
            "charge_kwh_today": r.get(today, _S_CHG) / _MJ_PER_KWH,
        }

    def to_bytes(self):
        return b"".join(self.pieces())

    def pieces(self):
        yield b"VGMS\x01"
        yield from self.ring.pieces()

    def from_bytes(self, data):
        if len(data) != 5 + self.ring.size() or bytes(data[:5]) != b"VGMS\x01":
            return False
        self.ring.load(data[5:])
        self.integ.prev_t = None
        return True


def for_block(values, **kw):
    """A metrics object suited to a device's block: SolarMetrics for an MPPT
    (PPV), BatteryMetrics for a monitor (SOC, CE or H6), else None."""
    if "PPV" in values:
        return SolarMetrics(**{k: kw[k] for k in kw if k in ("max_gap_s", "day_offset_s")})
    if "SOC" in values or "CE" in values or "H6" in values:
        return BatteryMetrics(**kw)
    return None


_MAX_SET = const(8)  # devices with metrics per gateway; more are dropped (counted)
_KIND_BAT = const(1)
_KIND_SOL = const(2)


class MetricSet:
    """The metrics of every device of a gateway, for the app to wire in:
    update(device, block, now) after each decoded block, values(device, now)
    to publish and to feed the alarm engine, to_bytes()/from_bytes() to keep
    them in flash. The kind (battery monitor or MPPT) is picked from the
    device's first suitable block. capacity: {device: Ah} from the config."""

    def __init__(self, capacity=None, max_gap_s=60, day_offset_s=0):
        self.capacity = capacity or {}
        self.max_gap_s = max_gap_s
        self.day_offset_s = day_offset_s
        self.objs = {}
        self.dropped = 0

    def _make(self, device, kind):
        if kind == _KIND_SOL:
            return SolarMetrics(self.max_gap_s, self.day_offset_s)
        return BatteryMetrics(capacity_ah=self.capacity.get(device), max_gap_s=self.max_gap_s,
                              day_offset_s=self.day_offset_s)

    def update(self, device, block, now):
        m = self.objs.get(device)
        if m is None:
            if "PPV" in block:
                kind = _KIND_SOL
            elif "SOC" in block or "CE" in block or "H6" in block:
                kind = _KIND_BAT
            else:
                return
            if len(self.objs) >= _MAX_SET:
                self.dropped += 1
                return
            m = self.objs[device] = self._make(device, kind)
        m.update(block, now)

    def values(self, device, now):
        m = self.objs.get(device)
        return m.values(now) if m is not None else None

    def clock_set(self, delta):
        for m in self.objs.values():
            m.clock_set(delta)

    def to_bytes(self):
        return b"".join(self.pieces())

    def pieces(self):
        """to_bytes() as small bytes objects made one at a time (see
        DayRing.pieces): the app writes them to flash as they come."""
        names = [n for n in self.objs if len(n.encode()) < 256]
        yield b"VGMX" + struct.pack("<B", len(names))
        for name in names:
            m = self.objs[name]
            nb = name.encode()
            kind = _KIND_SOL if isinstance(m, SolarMetrics) else _KIND_BAT
            size = 0
            for p in m.pieces():  # a first pass for the length (small garbage, hourly)
                size += len(p)
            yield struct.pack("<BB", len(nb), kind) + nb + struct.pack("<H", size)
            yield from m.pieces()

    def from_bytes(self, data):
        """Restore every device's metrics; False (nothing changed) on foreign
        or damaged data."""
        try:
            if bytes(data[:4]) != b"VGMX":
                return False
            n = data[4]
            o = 5
            got = {}
            for _ in range(n):
                ln, kind = struct.unpack_from("<BB", data, o)
                o += 2
                name = bytes(data[o:o + ln]).decode()
                o += ln
                bl = struct.unpack_from("<H", data, o)[0]
                o += 2
                if kind not in (_KIND_BAT, _KIND_SOL) or o + bl > len(data):
                    return False
                m = self._make(name, kind)
                if not m.from_bytes(data[o:o + bl]):
                    return False
                got[name] = m
                o += bl
            if o != len(data) or len(got) > _MAX_SET:
                return False
        except Exception:  # noqa: BLE001 - damaged flash must not stop boot
            return False
        self.objs = got
        return True
