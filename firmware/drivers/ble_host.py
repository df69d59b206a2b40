# Host twin of the ESP32 `bluetooth.BLE` object for the scanner, plus a
# simulated radio neighbourhood: Victron devices sending encrypted adverts
# and any number of other advertisers (phones, tags) with rotating random
# addresses. Runs on the unix port and CPython; time is driven by the caller.
#
# FakeBLE mimics what ble_scan.py uses: active(), irq(handler), config(),
# gap_scan(duration_ms, interval_us, window_us, active) and gap_scan(None).
# Scan results are delivered like the real stack does: the handler gets
# memoryviews of ONE reused buffer, valid only during the call, so a consumer
# that keeps a reference instead of copying sees its data overwritten.

_IRQ_SCAN_RESULT = 5
_IRQ_SCAN_DONE = 6
_ADV_MAX = 31  # legacy advertising payload limit


class FakeBLE:
    def __init__(self):
        self._irq = None
        self._active = False
        self.scanning = False
        self.scan_calls = []  # (duration_ms, interval_us, window_us, active), last 8 kept
        self.scan_starts = 0
        self.now_ms = 0
        self._scan_end = 0
        self._addr = bytearray(6)
        self._adv = bytearray(_ADV_MAX)
        self.delivered = 0
        self.missed = 0  # adverts sent while no scan was running
        self.fail_next_scans = 0  # make gap_scan() raise OSError this many times

    def active(self, v=None):
        if v is not None:
            self._active = bool(v)
        return self._active

    def irq(self, handler):
        self._irq = handler

    def config(self, *args, **kw):
        return None

    def gap_scan(self, duration_ms, interval_us=1280000, window_us=11250, active=False):
        if duration_ms is None:
            if self.scanning:
                self.scanning = False
                if self._irq:
                    self._irq(_IRQ_SCAN_DONE, ())
            return
        if self.fail_next_scans:
            self.fail_next_scans -= 1
            raise OSError(16)  # EBUSY, as a stack that is still busy answers
        if self.scanning:
            raise OSError(16)
        self._active = True
        self.scanning = True
        self.scan_starts += 1
        if len(self.scan_calls) >= 8:
            self.scan_calls.pop(0)
        self.scan_calls.append((duration_ms, interval_us, window_us, active))
        self._scan_end = self.now_ms + duration_ms if duration_ms else -1

    def advance(self, ms):
        """Let `ms` of simulated time pass; ends the scan window when due."""
        self.now_ms += ms
        if self.scanning and self._scan_end >= 0 and self.now_ms >= self._scan_end:
            self.scanning = False
            if self._irq:
                self._irq(_IRQ_SCAN_DONE, ())

    def deliver(self, addr, adv, rssi=-70, addr_type=0, adv_type=3):
        """One advert on air: reaches the IRQ only while a scan runs."""
        if not (self.scanning and self._irq):
            self.missed += 1
            return False
        n = len(adv)
        if n > _ADV_MAX:
            n = _ADV_MAX  # the air interface cannot carry more
        a = self._addr
        b = self._adv
        for i in range(6):
            a[i] = addr[i]
        for i in range(n):
            b[i] = adv[i]
        self.delivered += 1
        self._irq(_IRQ_SCAN_RESULT, (addr_type, memoryview(a), adv_type, rssi, memoryview(b)[:n]))
        return True


def victron_adv(mfr):
    """AD payload (flags + manufacturer data) for Victron manufacturer data
    given without the company id (starting at 0x10)."""
    out = bytearray(3 + 4 + len(mfr))
    out[0] = 2
    out[1] = 0x01
    out[2] = 0x06
    out[3] = len(mfr) + 3
    out[4] = 0xFF
    out[5] = 0xE1
    out[6] = 0x02
    out[7:] = mfr
    return out


class Neighbourhood:
    """Other advertisers: `count` devices whose random address rotates every
    `rotate_ms`, each sending a non-Victron advert (Apple/Microsoft/tag-like
    manufacturer data or service data). Deterministic from `seed`."""

    def __init__(self, count, seed=1, rotate_ms=15 * 60 * 1000):
        self.count = count
        self.rotate_ms = rotate_ms
        self._s = seed or 1
        self._addrs = bytearray(6 * count)
        self._next_rotate = [0] * count
        self.rotations = 0
        self._adv = bytearray(24)
        self._addr = bytearray(6)
        for k in range(11, 24):
            self._adv[k] = self._rand() & 0xFF

    def _rand(self):
        x = self._s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._s = x
        return x

    def _rotate(self, i, now_ms):
        o = 6 * i
        for k in range(6):
            self._addrs[o + k] = self._rand() & 0xFF
        self._addrs[o] |= 0x40  # resolvable private address
        self._addrs[o] &= 0x7F
        self._next_rotate[i] = now_ms + self.rotate_ms - (self._rand() % 60000)
        self.rotations += 1

    def emit(self, ble, now_ms):
        """Every device sends one advert; returns how many were sent."""
        adv = self._adv
        addr = self._addr
        for i in range(self.count):
            if now_ms >= self._next_rotate[i]:
                self._rotate(i, now_ms)
            o = 6 * i
            for k in range(6):
                addr[k] = self._addrs[o + k]
            kind = i % 4
            adv[0] = 2
            adv[1] = 0x01
            adv[2] = 0x1A
            if kind == 0:  # Apple continuity-like
                adv[3] = 20
                adv[4] = 0xFF
                adv[5] = 0x4C
                adv[6] = 0x00
            elif kind == 1:  # Microsoft beacon-like
                adv[3] = 20
                adv[4] = 0xFF
                adv[5] = 0x06
                adv[6] = 0x00
            elif kind == 2:  # service data 0xFE9F
                adv[3] = 20
                adv[4] = 0x16
                adv[5] = 0x9F
                adv[6] = 0xFE
            else:  # manufacturer data whose 3rd byte is E1 (a near miss)
                adv[3] = 20
                adv[4] = 0xFF
                adv[5] = 0x02
                adv[6] = 0xE1
            x = self._rand()  # 4 fresh bytes per advert; the rest stays from before
            adv[7] = x & 0xFF
            adv[8] = (x >> 8) & 0xFF
            adv[9] = (x >> 16) & 0xFF
            adv[10] = (x >> 24) & 0xFF
            ble.deliver(addr, adv, -60 - (i % 40))
        return self.count
