# BLE scanner (firmware/drivers/ble_scan.py) on its host twin (ble_host.py):
# IRQ filter, bounded ring with drop counter, copy semantics, scan restarts,
# and the whole path encrypted advert -> IRQ -> ring -> task -> Tracker.
# Runs under CPython and the MicroPython unix port.
import sys

import asyncio

try:  # CPython: the installed host tools
    from vegw import ble_encode as be
except ImportError:  # MicroPython: the runner starts in the repository root
    sys.path.append("host_tools/vegw")
    import ble_encode as be
import ble_readout as br
from drivers import ble_host, ble_scan
from _util import IS_MICROPYTHON, skip

KEY = b"\x11" * 8 + b"\x22" * 8
MAC = b"\xc0\xff\xee\x00\x00\x01"
MAC2 = b"\xc0\xff\xee\x00\x00\x02"


class Sink:
    def __init__(self):
        self.got = []

    def __call__(self, mac, data, rssi):
        self.got.append((bytes(mac), bytes(data), rssi))


def victron(counter, v=12.5, key=KEY):
    return be.encode("battery_monitor", {"V": v, "SOC": 50.0}, key, counter)


def _ble():
    b = ble_host.FakeBLE()
    b.active(True)  # what the platform or Scanner.run does first
    return b


def test_stack_refuses_what_nimble_refuses_and_the_scanner_activates_it():
    # the stand-in answers as NimBLE does under MicroPython: an inactive
    # stack ENODEV, a window longer than the interval EINVAL, a second
    # scan EALREADY (extmod/nimble/modbluetooth_nimble.c, ble_gap_disc)
    b = ble_host.FakeBLE()
    for args in ((1000, 100000, 100000), (None,)):
        try:
            b.gap_scan(*args)
            code = None
        except OSError as e:
            code = e.args[0]
        assert code == 19, args
    b.active(True)
    for args, want in (((1000, 100000, 200000), 22), ((1000, 100000, 100000), None), ((1000, 100000, 100000), 114)):
        try:
            b.gap_scan(*args)
            code = None
        except OSError as e:
            code = e.args[0]
        assert code == want, (args, code)
    # the scanner on a stack nobody activated: it does, and scans
    fresh = ble_host.FakeBLE()
    sc = ble_scan.Scanner(fresh, Sink(), window_ms=100, interval_ms=100, duration_ms=500)

    async def main():
        task = asyncio.create_task(sc.run())
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    assert fresh.active() and sc.windows >= 1 and sc.scan_errors == 0


def test_irq_filters_company_id_before_copying():
    ble = _ble()
    sink = Sink()
    sc = ble_scan.Scanner(ble, sink)
    ble.irq(sc._irq)
    ble.gap_scan(1000, 100000, 100000, False)
    n = ble_host.Neighbourhood(40, seed=7)
    n.emit(ble, 0)
    assert sc.results == 40 and sc.victron == 0 and sc.pending() == 0
    mfr = victron(5)
    ble.deliver(MAC, ble_host.victron_adv(mfr), -55)
    assert sc.victron == 1 and sc.pending() == 1
    ble.deliver(MAC, b"\x02\x01\x06\x1e\xff\xe1\x02\x10", -55)  # AD length runs past the end
    assert sc.malformed == 1
    assert sc.drain() == 1
    assert sink.got == [(MAC, mfr, -55)]


def test_data_is_copied_out_of_the_irq_buffer():
    ble = _ble()
    sink = Sink()
    sc = ble_scan.Scanner(ble, sink)
    ble.irq(sc._irq)
    ble.gap_scan(1000, 100000, 100000, False)
    a = victron(1, 12.0)
    b = victron(2, 13.0)
    ble.deliver(MAC, ble_host.victron_adv(a), -40)
    ble.deliver(MAC2, ble_host.victron_adv(b), -90)  # reuses the fake's one buffer
    sc.drain()
    assert sink.got == [(MAC, a, -40), (MAC2, b, -90)]


def test_ring_is_bounded_and_counts_drops():
    ble = _ble()
    sink = Sink()
    sc = ble_scan.Scanner(ble, sink)
    ble.irq(sc._irq)
    ble.gap_scan(1000, 100000, 100000, False)
    for c in range(40):
        ble.deliver(MAC, ble_host.victron_adv(victron(c)))
    assert sc.pending() == 15  # 16 slots, one kept empty
    assert sc.dropped == 25 and sc.victron == 15
    assert sc.drain() == 15
    assert [br.parse_mfr(d)[2] for _, d, _ in sink.got] == list(range(15))  # oldest kept
    ble.deliver(MAC, ble_host.victron_adv(victron(99)))
    assert sc.drain() == 1 and sc.dropped == 25


def test_oversized_and_mac_filter():
    ble = _ble()
    sink = Sink()
    sc = ble_scan.Scanner(ble, sink, macs=[MAC])
    ble.irq(sc._irq)
    ble.gap_scan(1000, 100000, 100000, False)
    big = be.encode("battery_monitor", {}, KEY, 1, payload_len=16) + b"\x00"  # 25 bytes
    ble.deliver(MAC, bytes([len(big) + 3, 0xFF, 0xE1, 0x02]) + big)  # no flags: fits in 31 bytes
    assert sc.oversized == 1 and sc.pending() == 0
    ble.deliver(MAC2, ble_host.victron_adv(victron(1)))
    assert sc.other == 1 and sc.pending() == 0
    ble.deliver(MAC, ble_host.victron_adv(victron(1)))
    assert sc.pending() == 1


def test_irq_path_allocates_nothing_on_micropython():
    if not IS_MICROPYTHON:
        skip("heap_lock is MicroPython only")
    import micropython

    ble = _ble()
    sc = ble_scan.Scanner(ble, Sink(), macs=[MAC])
    vic = (0, memoryview(bytearray(MAC)), 3, -60, memoryview(ble_host.victron_adv(victron(3))))
    other = (0, memoryview(bytearray(b"\x41\x02\x03\x04\x05\x06")), 0, -80,
             memoryview(bytearray(b"\x02\x01\x06\x07\xff\x4c\x00\x01\x02\x03\x04")))
    micropython.heap_lock()
    try:
        for i in range(20):
            sc._irq(5, other)
            sc._irq(5, vic)  # queued until full, then counted as dropped
        sc._irq(6, ())
    finally:
        micropython.heap_unlock()
    assert sc.results == 40 and sc.victron == 15 and sc.dropped == 5


def test_end_to_end_scanner_tracker_with_restarts():
    ble = _ble()
    tr = br.Tracker([(MAC, KEY), (MAC2, b"\x33" * 16)])
    notices = []
    published = []

    def on_advert(mac, data, rssi):
        st = tr.feed(bytes(mac), data)
        if tr.notice:
            notices.append(tr.notice)
        if st == br.OK:
            published.append((bytes(mac), tr.decoder.counter, tr.values()))

    sc = ble_scan.Scanner(ble, on_advert, window_ms=100, interval_ms=100, duration_ms=2000)
    hood = ble_host.Neighbourhood(50, seed=3, rotate_ms=5000)

    async def main():
        task = asyncio.create_task(sc.run())
        await asyncio.sleep(0)
        counter = 0
        for step in range(100):  # 100 x 100 ms of simulated time
            if step % 5 == 0:
                counter += 1
            for _ in range(3):  # every advert repeated
                ble.deliver(MAC, ble_host.victron_adv(victron(counter, 12.0 + counter / 100)))
            ble.deliver(MAC2, ble_host.victron_adv(victron(counter)))  # wrong key for MAC2
            hood.emit(ble, ble.now_ms)
            ble.advance(100)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    assert [c for _, c, _ in published] == list(range(1, 21)), [c for _, c, _ in published]
    for mac, c, vals in published:
        assert mac == MAC and abs(vals["V"] - (12.0 + c / 100)) < 1e-9
    assert notices == ["key does not match device C0:FF:EE:00:00:02 (advert key byte 11, configured key starts 33)"]
    assert sc.windows >= 5 and ble.scan_starts == sc.windows  # bounded windows, restarted
    assert ble.scan_calls[-1] == (2000, 100000, 100000, False)  # passive, window = interval
    assert sc.dropped == 0 and sc.results == 100 * 54
    assert tr.counts["repeat"] == 100 * 3 - 20 and tr.counts["wrong_key"] == 100
    assert not ble.scanning  # cancelled task stops the scan


def test_scan_start_failure_is_retried():
    ble = _ble()
    ble.fail_next_scans = 2
    sc = ble_scan.Scanner(ble, Sink(), duration_ms=100)
    sc.retry_ms = 1

    async def main():
        task = asyncio.create_task(sc.run())
        for _ in range(50):
            await asyncio.sleep(0.002)
            if ble.scanning:
                break
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    assert sc.scan_errors == 2 and sc.windows == 1


def test_window_never_exceeds_interval_and_config():
    sc = ble_scan.Scanner(ble_host.FakeBLE(), Sink(), window_ms=300, interval_ms=100)
    assert sc.window_ms == 100
    assert ble_scan.scan_config({"ble": {"scan_window_ms": 80, "scan_interval_ms": 160}}) == (80, 160)
    assert ble_scan.scan_config({}) == (100, 100)
