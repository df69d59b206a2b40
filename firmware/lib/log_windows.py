# The flash log's 1-minute history: each window's per-device aggregates
# (an Agg in each device, below) go through the binary minute encoder
# (records.MinuteEncoder: key and delta frames) into the flash log, where
# the uplink replays them from (log_replay.py). Split from gateway.py: the
# gateway feeds readings into the devices' Agg and calls roll() each second.
from array import array

import records

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_MAX_AGG = const(48)  # fields aggregated per device in one window (more are counted, not logged)


class LogWindows:
    def __init__(self, log, interval_s, counters):
        self.log = log  # flashlog.FlashLog or None
        self.interval = interval_s  # seconds per window (the log_interval command sets it)
        self.counters = counters  # the gateway's ("records")
        self._slot = None  # start of the current window (s)
        self._enc = None  # records.MinuteEncoder for the current layout
        self._layout = None  # [(device, fields)] of the encoder's frames
        self._log_bytes = 0  # record bytes appended since boot (history estimate)
        self._hist_t0 = None  # start of the first logged window since boot

    def roll(self, now_s, devices):
        """A reading or tick at now_s: close the window it ends."""
        slot = int(now_s // self.interval) * self.interval
        if self._slot is None:
            self._slot = slot
        elif slot != self._slot:
            self._log_window(self._slot, devices)
            self._slot = slot

    def _log_window(self, start_s, devices, end_s=None):
        """Close one aggregation window: one row per device (scaled min/avg/
        max for quantities, last value for states) into the binary encoder;
        finished blocks go to the flash log."""
        if self._hist_t0 is None:
            self._hist_t0 = start_s
        layout = []
        rows = []
        for dev in devices:
            got = dev.agg.take()
            if got is None:
                layout.append((dev.name, self._fields_of(dev.name)))
                rows.append(None)
            else:
                layout.append((dev.name, got[0]))
                rows.append(got[1])
        if layout != self._layout:
            # a device came or its fields changed: new layout, key frame
            self.flush_encoder()
            self._layout = layout
            self._enc = records.MinuteEncoder(layout, key_every=60, per_record=5)
        if any(r is not None for r in rows):
            end = start_s + self.interval if end_s is None else end_s
            for rtype, payload in self._enc.add(int(end), rows):
                self._append(rtype, payload)
        if self.log is not None:
            self.log.flush()

    def _fields_of(self, name):
        # a device silent this window keeps its place in the layout
        if self._layout is not None:
            for d, fields in self._layout:
                if d == name:
                    return fields
        return []

    def flush_encoder(self):
        """Put the open block of minutes into the log (before a flush that
        must not leave data in RAM: shutdown, layout change)."""
        if self._enc is not None:
            r = self._enc.take()
            if r is not None:
                self._append(r[0], r[1])

    def _append(self, rtype, payload):
        if self.log is not None:
            self.log.append(rtype, payload)
            self.counters["records"] += 1
            self._log_bytes += len(payload) + 8  # + the record's header on flash

    def clock_set(self, delta, now_s, devices, shift):
        """The clock jumped by delta s: the open window ends now, on the
        unset clock (converted when sent), and the open block closes so no
        delta chain spans the jump."""
        self._hist_t0 = shift(self._hist_t0, delta)
        if self._slot is not None:
            self._log_window(self._slot, devices, now_s - delta)
            self._slot = None
        self.flush_encoder()
        if self._enc is not None:
            self._enc.force_key()

    def history_days(self, now_s):
        """Days of history the flash log holds at the rate records were
        written since boot (None before an hour of it)."""
        t0 = self._hist_t0
        if self.log is None or t0 is None or now_s - t0 < 3600 or not self._log_bytes:
            return None
        return round(self.log.capacity() * (now_s - t0) / self._log_bytes / 86400, 1)

    def close(self, devices):
        """Clean shutdown: the open window and block go to flash."""
        if self._slot is not None:
            self._log_window(self._slot, devices)
        self.flush_encoder()
        if self.log is not None:
            self.log.flush()


class Agg:
    """One log window of one device in scaled integers (records.res gives
    each field's resolution): parallel preallocated arrays, a slot per field
    assigned on first sight; no allocation per sample beyond the float a
    scaling makes. Quantities: min/sum/max/count; states: last value."""

    def __init__(self):
        self.names = []  # slot -> field
        self.slot = {}  # field -> slot
        self.dec = bytearray(_MAX_AGG)
        self.analog = bytearray(_MAX_AGG)
        zeros = [0] * _MAX_AGG  # "l" is 4 or 8 bytes by port: size by items
        self.mn = array("l", zeros)
        self.mx = array("l", zeros)
        self.sm = array("l", zeros)
        self.cnt = array("H", zeros)
        self.n = 0  # samples this window
        self.refused = 0  # fields beyond _MAX_AGG

    def add(self, f, v):
        if type(v) not in (int, float, bool):
            return  # text (FW, SER#) and "not available" are not logged
        s = self.slot.get(f)
        if s is None:
            s = len(self.names)
            if s >= _MAX_AGG:
                self.refused += 1
                return
            self.names.append(f)
            self.slot[f] = s
            dec, kind = records.res(f)
            self.dec[s] = dec
            self.analog[s] = kind == records.KIND_ANALOG
        x = records.to_scaled(v, self.dec[s])
        if x is None:
            return
        c = self.cnt[s]
        if not self.analog[s] or not c:
            self.mn[s] = self.mx[s] = x
            self.sm[s] = x
        else:
            if x < self.mn[s]:
                self.mn[s] = x
            if x > self.mx[s]:
                self.mx[s] = x
            self.sm[s] += x
        self.cnt[s] = c + 1 if c < 65535 else c

    def take(self):
        """(field names, row for records.MinuteEncoder) of the window, or
        None if nothing came; starts the next window. The names are every
        field ever seen (sorted), so the log's layout only changes when a new
        field appears; a field without a sample this window is None."""
        if not any(self.cnt[s] for s in range(len(self.names))):
            return None
        fields = sorted(self.names)
        row = []
        for f in fields:
            s = self.slot[f]
            c = self.cnt[s]
            if not c:
                row.append(None)
            elif self.analog[s]:
                row.append((self.mn[s], (2 * self.sm[s] + c) // (2 * c), self.mx[s]))
            else:
                row.append(self.mn[s])  # last value
            self.cnt[s] = 0
        return fields, row
