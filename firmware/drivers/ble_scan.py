# Passive BLE scanner for Victron Instant Readout adverts, built on the
# `bluetooth` module's IRQ (not aioble; see docs/ble.md for why).
#
#   IRQ (BLE host task)                      asyncio task (run())
#   _IRQ_SCAN_RESULT:                        await flag.wait()
#     walk the AD structures in place;       drain(): for each filled slot
#     not company 0x02E1 -> return             on_advert(mac, data, rssi)
#     (nothing copied, nothing allocated)      (memoryviews into the slot,
#     configured-MAC filter (optional)          valid only during the call)
#     copy into the next ring slot, or       _IRQ_SCAN_DONE -> start the next
#     count a drop if the ring is full          bounded scan window
#     flag.set()
#
# Ring: _RING slots of _SLOT bytes, one preallocated bytearray; the IRQ only
# moves `_head`, the task only moves `_tail` (single producer, single
# consumer, safe under the GIL). Slot layout:
#   [0..5] address (display order) | [6] data length | [7] rssi + 128 |
#   [8..31] manufacturer data after the company id (at most 24 bytes)
#
# Scanning: gap_scan(duration_ms, interval_us, window_us, active=False),
# restarted each time the stack reports the window done, so the radio stack
# never holds state for longer than one window. Defaults (config "ble"):
# window = interval = 100 ms (continuous passive scan, which ESP-IDF >= 5.5.5
# needs with Wi-Fi coexistence; see docs/ble.md), 30 s per scan call.
import asyncio

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_RING = const(16)  # slots: 4 devices x a few repeats between two loop turns, x2 margin
_SLOT = const(32)
_MAX_DATA = const(24)  # manufacturer data after the company id (8 header + 16 payload)
_MAX_MACS = const(16)  # configured-MAC filter size (same as ble_readout's device limit)
_RETRY_MS = const(1000)  # wait after gap_scan() fails before trying again

_STUCK_MS = const(5000)  # scan-done overdue by this much: stop and restart the scan

DEFAULT_WINDOW_MS = 100
DEFAULT_INTERVAL_MS = 100
DEFAULT_DURATION_MS = 30000


try:
    _Flag = asyncio.ThreadSafeFlag  # type: ignore[attr-defined]
except AttributeError:  # CPython (host tests): the fake radio calls the IRQ in-thread

    class _Flag:  # type: ignore[no-redef]
        def __init__(self):
            self._e = asyncio.Event()

        def set(self):
            self._e.set()

        async def wait(self):
            await self._e.wait()
            self._e.clear()


async def _sleep_ms(ms):
    await asyncio.sleep(ms / 1000)


async def _wait_ms(aw, ms):
    if hasattr(asyncio, "wait_for_ms"):
        return await asyncio.wait_for_ms(aw, ms)
    # CPython host tests: no watchdog (3.11's wait_for can swallow a cancel
    # that races with completion, which would keep the task alive)
    return await aw


class Scanner:
    """Bounded, allocation-free Victron advert scanner.

    ble: a `bluetooth.BLE()` (or the host twin in ble_host.py).
    on_advert(mac, data, rssi): called from the task for each Victron advert;
    mac/data are memoryviews valid only during the call (copy what you keep).
    macs: optional list of 6-byte addresses; when given, Victron adverts from
    other addresses are dropped in the IRQ (counted in `other`).
    """

    def __init__(self, ble, on_advert, window_ms=DEFAULT_WINDOW_MS, interval_ms=DEFAULT_INTERVAL_MS,
                 duration_ms=DEFAULT_DURATION_MS, macs=None):
        if window_ms > interval_ms:
            window_ms = interval_ms  # the stack refuses window > interval
        self._ble = ble
        self._cb = on_advert
        self.window_ms = window_ms
        self.interval_ms = interval_ms
        self.duration_ms = duration_ms
        self._buf = bytearray(_RING * _SLOT)
        self._mv = memoryview(self._buf)
        self._head = 0
        self._tail = 0
        self._macs = bytearray(_MAX_MACS * 6)
        self._nmacs = 0
        if macs:
            for m in macs[:_MAX_MACS]:
                for k in range(6):
                    self._macs[self._nmacs * 6 + k] = m[k]
                self._nmacs += 1
        self._flag = _Flag()
        self._done = False
        self.scanning = False  # True while its windows run (the app beats "ble" on it: adverts or not)
        # counters (all small ints, updated in place)
        self.results = 0  # every scan result, any advertiser
        self.victron = 0  # adverts with company id 0x02E1 that were queued
        self.other = 0  # Victron adverts from addresses not configured
        self.dropped = 0  # ring full
        self.oversized = 0  # Victron manufacturer data longer than _MAX_DATA
        self.malformed = 0  # AD structure running past the end of the advert
        self.windows = 0  # scan windows started
        self.scan_errors = 0  # gap_scan() raised
        self.stuck = 0  # scan-done never came: scan stopped and restarted
        self.delivered = 0
        self.retry_ms = _RETRY_MS
        self.callback_error = None  # last exception raised by on_advert

    # -- IRQ side: no allocation, no exceptions escape --------------------------
    def _irq(self, event, data):
        if event == _IRQ_SCAN_RESULT:
            self.results += 1
            addr = data[1]
            adv = data[4]
            n = len(adv)
            i = 0
            while i + 3 < n:
                ln = adv[i]
                if ln == 0:
                    return
                if adv[i + 1] == 0xFF and ln >= 3 and adv[i + 2] == 0xE1 and adv[i + 3] == 0x02:
                    if i + 1 + ln > n:
                        self.malformed += 1
                        return
                    self._queue(addr, adv, i + 4, ln - 3, data[3])
                    return
                i += ln + 1
        elif event == _IRQ_SCAN_DONE:
            self._done = True
            self._flag.set()

    def _queue(self, addr, adv, start, dlen, rssi):
        if dlen > _MAX_DATA:
            self.oversized += 1
            return
        if self._nmacs:
            macs = self._macs
            j = 0
            found = False
            while j < self._nmacs:
                o = j * 6
                if (macs[o] == addr[0] and macs[o + 1] == addr[1] and macs[o + 2] == addr[2]
                        and macs[o + 3] == addr[3] and macs[o + 4] == addr[4] and macs[o + 5] == addr[5]):
                    found = True
                    break
                j += 1
            if not found:
                self.other += 1
                return
        h = self._head
        nxt = h + 1
        if nxt == _RING:
            nxt = 0
        if nxt == self._tail:
            self.dropped += 1
            return
        buf = self._buf
        o = h * _SLOT
        for k in range(6):
            buf[o + k] = addr[k]
        buf[o + 6] = dlen
        r = rssi + 128
        buf[o + 7] = 0 if r < 0 else (255 if r > 255 else r)
        o += 8
        for k in range(dlen):
            buf[o + k] = adv[start + k]
        self._head = nxt
        self.victron += 1
        self._flag.set()

    # -- task side ----------------------------------------------------------------
    def pending(self):
        d = self._head - self._tail
        return d + _RING if d < 0 else d

    def drain(self):
        """Hand every queued advert to the callback; returns how many."""
        mv = self._mv
        buf = self._buf
        n = 0
        while self._tail != self._head:
            o = self._tail * _SLOT
            try:
                self._cb(mv[o:o + 6], mv[o + 8:o + 8 + buf[o + 6]], buf[o + 7] - 128)
            except Exception as e:  # noqa: BLE001 - a consumer bug must not stop the scan
                self.callback_error = e
            t = self._tail + 1
            self._tail = 0 if t == _RING else t
            n += 1
        self.delivered += n
        return n

    def _start(self):
        self._done = False
        self._ble.gap_scan(self.duration_ms, self.interval_ms * 1000, self.window_ms * 1000, False)
        self.windows += 1

    async def run(self):
        """Scan forever in bounded windows; cancel the task to stop."""
        if not self._ble.active():
            self._ble.active(True)  # the stack answers ENODEV to a scan otherwise
        self._ble.irq(self._irq)
        self.scanning = True
        try:
            while True:
                try:
                    self._start()
                except OSError:
                    self.scan_errors += 1
                    await _sleep_ms(self.retry_ms)
                    continue
                while not self._done:
                    try:
                        await _wait_ms(self._flag.wait(), self.duration_ms + _STUCK_MS)
                    except asyncio.TimeoutError:
                        self.stuck += 1
                        try:
                            self._ble.gap_scan(None)
                        except OSError:
                            pass
                        self._done = True
                    self.drain()
                self.drain()
        finally:
            self.scanning = False  # True while its windows run (the app beats "ble" on it: adverts or not)
            try:
                self._ble.gap_scan(None)
            except OSError:
                pass

    def stats(self):
        return {
            "results": self.results, "victron": self.victron, "other": self.other,
            "dropped": self.dropped, "oversized": self.oversized, "malformed": self.malformed,
            "windows": self.windows, "scan_errors": self.scan_errors, "stuck": self.stuck, "delivered": self.delivered,
        }


def scan_config(cfg):
    """(window_ms, interval_ms) from the config's "ble" section with defaults."""
    b = cfg.get("ble") or {} if isinstance(cfg, dict) else {}
    w = b.get("scan_window_ms", DEFAULT_WINDOW_MS)
    i = b.get("scan_interval_ms", DEFAULT_INTERVAL_MS)
    return w, i
