"""The app feeds the hardware watchdog only while every task is alive; a
BLE device that stops advertising does not count as a dead task."""
import asyncio
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "firmware" / "lib"), str(ROOT / "firmware")]

import app  # noqa: E402


class FakePlatform:
    def __init__(self):
        self.feeds = 0

    def block_device(self):
        return None

    def relay(self):
        return None

    def state_store(self):
        return None

    def feed_watchdog(self):
        self.feeds += 1

    def now_s(self):
        return 1000

    def link_info(self):
        return {}


class FakeScanner:
    scanning = True


def make():
    app._load()
    cfg = {"gateway": {"id": "w"}, "mqtt": {"host": "127.0.0.1"}, "alarms": {},
           "devices": [{"name": "shunt", "type": "ble", "mac": "C0:DE:00:00:00:01",
                        "key": "00112233445566778899aabbccddeeff"}]}
    return app.App(FakePlatform(), cfg)


def test_a_silent_task_stops_the_watchdog_feed():
    a = make()
    a.alive = {"ticker": 0, "uplink": 0, "reader:house": 0}
    assert a.all_alive(29000)
    a.alive["reader:house"] = -2000  # silent for more than 30 s
    assert not a.all_alive(29000)


def test_ble_scanner_counts_alive_without_adverts():
    a = make()
    a.scanner = FakeScanner()
    a.alive = {"ble": 0}
    a.running = True

    async def one_tick():
        t = asyncio.create_task(a.ticker())
        await asyncio.sleep(1.2)
        a.running = False
        t.cancel()

    asyncio.run(one_tick())
    assert app.ticks_diff(app.ticks_ms(), a.alive["ble"]) < 5000  # refreshed by the ticker
    assert a.all_alive(app.ticks_ms())


def test_a_memory_error_in_the_ticker_costs_a_second_not_the_gateway():
    a = make()
    calls = []

    def tick(now):
        calls.append(now)
        if len(calls) == 1:
            raise MemoryError("memory allocation failed, allocating 1528 bytes")

    a.gw.tick = tick

    async def run():
        t = asyncio.create_task(a.ticker())
        await asyncio.sleep(2.5)
        a.running = False
        await asyncio.sleep(1.1)
        t.cancel()

    asyncio.run(run())
    assert len(calls) >= 2 and a.mem_errors == 1  # ticked on after it, counted (status: mem_errors)
