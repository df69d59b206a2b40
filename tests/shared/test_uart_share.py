# Time-slicing one UART across several VE.Direct devices (lib/uart_share.py).
import asyncio

import uart_share
import vedirect
from _util import read_fixture

FAQ = read_fixture("faq_bmv700.bin")


class FakePort:
    """Two devices on two pins, each sending one whole block a second; only
    the selected pin is heard."""

    def __init__(self, clock):
        self.clock = clock
        self.selected = []
        self.cur = 0

    def select(self, i):
        self.cur = i
        self.selected.append(i)

    async def read_into(self, buf):
        self.clock.t += 100
        if self.clock.t % 1000 == 0:
            n = len(FAQ)
            buf[:n] = FAQ
            return n
        return 0


class Clock:
    t = 0

    def __call__(self):
        return self.t


def test_devices_take_turns_and_blocks_never_cross():
    clock = Clock()
    port = FakePort(clock)
    got = [[], []]
    parsers = [vedirect.Parser(lambda b, i=i: got[i].append(b.items())) for i in (0, 1)]
    sr = uart_share.SharedReader(port, parsers, dwell_ms=2000, clock=clock)
    buf = bytearray(128)

    async def run():
        for _ in range(200):  # 20 s
            await sr.step(buf)

    asyncio.run(run())
    assert port.selected[:4] == [0, 1, 0, 1]
    assert sr.switches >= 9
    assert len(got[0]) >= 4 and len(got[1]) >= 4
    assert parsers[0].checksum_errors + parsers[1].checksum_errors <= sr.switches


def test_a_switch_resets_the_parser_so_half_blocks_are_dropped():
    clock = Clock()
    calls = []

    class P:
        def feed(self, buf, n):
            calls.append(("feed", n))

        def reset(self):
            calls.append(("reset",))

    class Port:
        def select(self, i):
            calls.append(("select", i))

        async def read_into(self, buf):
            clock.t += 500
            return 3

    sr = uart_share.SharedReader(Port(), [P(), P()], dwell_ms=1000, clock=clock)
    buf = bytearray(8)

    async def run():
        for _ in range(3):
            await sr.step(buf)

    asyncio.run(run())
    assert calls[0] == ("select", 0)
    i = calls.index(("select", 1))
    assert calls[i - 1] == ("reset",)
