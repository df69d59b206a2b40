# bluetooth module for `vegw doctor` tests on the stand-in board: a scan
# reports the adverts of hw/ble.json ([{"mac": "AA:..", "rssi": -70}]), then ends.
import json


class BLE:
    def __init__(self):
        self._on = False
        self._irq = None

    def active(self, v=None):
        if v is not None:
            self._on = bool(v)
        return self._on

    def irq(self, fn):
        self._irq = fn

    def gap_scan(self, ms, interval_us=0, window_us=0, active=False):
        if ms is None or self._irq is None:
            return
        with open("hw/ble.json") as f:
            adverts = json.load(f)
        for a in adverts:
            addr = bytes([int(x, 16) for x in a["mac"].split(":")])
            self._irq(5, (0, memoryview(addr), 0, a["rssi"], b""))
        self._irq(6, ())
