# One UART, several VE.Direct devices: time-slice the RX pin.
#
# An ESP32 has two UARTs free for data (UART0 is the REPL). A site with
# more VE.Direct devices than that listens to each device in turn: the RX pin
# of a shared UART is switched every `dwell_ms`. A VE.Direct device sends its
# blocks every second (a BMV two: main + history), so a dwell of 2 s catches
# at least one whole block of each; with N devices on one UART each device is
# updated about every N x dwell (2 devices: ~4 s, 3: ~6 s). The block cut
# short by a switch fails its checksum and is dropped; the parser is reset at
# every switch so no bytes of one device reach another's parser.
#
# Only RX is multiplexed: the TX pin of the first device stays attached (HEX
# commands can only go to that one).
#
# Pure logic over a port object with async read_into(buf) -> n | 0 | None and
# select(i) (drain, then listen to device i's pin); the ESP32 port does
# uart.init(rx=pin) there, the host twin switches sockets.
from clock import ticks_diff, ticks_ms


DWELL_MS = 2000


class SharedReader:
    def __init__(self, port, parsers, dwell_ms=DWELL_MS, clock=ticks_ms):
        self.port = port
        self.parsers = parsers  # one vedirect.Parser per device, in pin order
        self.dwell_ms = dwell_ms
        self.clock = clock
        self.current = 0
        self.switches = 0
        self._since = None

    def _switch(self):
        self.parsers[self.current].reset()  # a half block must not carry over
        self.current = (self.current + 1) % len(self.parsers)
        self.port.select(self.current)
        self.switches += 1
        self._since = self.clock()

    async def step(self, buf):
        """Read once and feed the selected device's parser; switch pins when
        its dwell is over."""
        if self._since is None:
            self.port.select(self.current)
            self._since = self.clock()
        n = await self.port.read_into(buf)
        p = self.parsers[self.current]
        if n is None:
            p.reset()
        elif n:
            p.feed(buf, n)
        if len(self.parsers) > 1 and ticks_diff(self.clock(), self._since) >= self.dwell_ms:
            self._switch()
        return n
