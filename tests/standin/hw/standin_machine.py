# machine.UART for `vegw doctor` tests on the stand-in board (unix port, which
# has no UART). Bytes a pin receives come from hw/uart_<rx>.bin in the board's
# root; the modem on hw/modem.json's rx pin answers AT commands from its
# "replies". Like the ESP32 port's UART when a pin is left out, a UART
# without tx= would take a default pin that is flash or PSRAM: refused here.
import json

_FLASH_OR_PSRAM = (6, 7, 8, 9, 10, 11, 16, 17)


def _modem():
    try:
        with open("hw/modem.json") as f:
            return json.load(f)
    except OSError:
        return {}


class UART:
    def __init__(self, uid, baudrate=9600, rx=None, tx=None, rxbuf=256, timeout=0, **kw):
        if tx is None or rx is None:
            raise ValueError("UART%d without tx/rx takes its default pins (flash/PSRAM): the board resets" % uid)
        if tx in _FLASH_OR_PSRAM or rx in _FLASH_OR_PSRAM:
            raise ValueError("GPIO%d/%d: a flash or PSRAM pin" % (rx, tx))
        m = _modem()
        self.replies = m.get("replies") if m.get("rx") == rx else None
        self.data = b""
        if self.replies is None:
            try:
                with open("hw/uart_%d.bin" % rx, "rb") as f:
                    self.data = f.read()
            except OSError:
                pass
        self.pos = 0

    def readinto(self, buf):
        n = min(len(buf), 256, len(self.data) - self.pos)
        if n <= 0:
            return None
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n

    def read(self, n=-1):
        if self.pos >= len(self.data):
            return None
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    def write(self, data):
        if self.replies is not None:
            cmd = data.decode().strip() if isinstance(data, bytes) else data.strip()
            self.data = ("\r\n%s\r\n" % self.replies.get(cmd, "ERROR")).encode()
            self.pos = 0
        return len(data)

    def deinit(self):
        pass
