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
        # as NimBLE under MicroPython (extmod/nimble/modbluetooth_nimble.c):
        # an inactive stack answers ENODEV, a window longer than the interval
        # EINVAL (ble_gap_disc), a scan already running EALREADY
        if not self._active:
            raise OSError(19)  # ENODEV: BLE.active(True) first
        if duration_ms is None:
            if self.scanning:
                self.scanning = False
                if self._irq:
                    self._irq(_IRQ_SCAN_DONE, ())
            return
        if window_us > interval_us:
            raise OSError(22)  # EINVAL
        if self.fail_next_scans:
            self.fail_next_scans -= 1
            raise OSError(16)  # EBUSY, as a stack that is still busy answers
        if self.scanning:
            raise OSError(114)  # EALREADY
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


def __getattr__(name):
    # the simulated neighbourhood (tests, soak, bench) lives in ble_hood.py:
    # `vegw sim` never uses it, so it stays out of the gateway's heap
    if name == "Neighbourhood":
        from drivers import ble_hood

        return ble_hood.Neighbourhood
    raise AttributeError(name)
