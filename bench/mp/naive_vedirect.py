# A byte-at-a-time state machine in the style of the common peer parsers
# (per-byte state checks, label/value built by string concatenation, checksum
# accumulated per byte, dict per block). Benchmark baseline only.
class NaiveParser:
    HEX, WAIT_HEADER, IN_KEY, IN_VALUE, IN_CHECKSUM = range(5)

    def __init__(self, on_block):
        self.on_block = on_block
        self.state = self.WAIT_HEADER
        self.key = ""
        self.value = ""
        self.bytes_sum = 0
        self.block = {}

    def input(self, byte):
        if byte == 0x3A and self.state != self.IN_CHECKSUM:
            self.state = self.HEX
        if self.state == self.WAIT_HEADER:
            self.bytes_sum += byte
            if byte == 0x0D:
                self.state = self.WAIT_HEADER
            elif byte == 0x0A:
                self.state = self.IN_KEY
        elif self.state == self.IN_KEY:
            self.bytes_sum += byte
            if byte == 0x09:
                if self.key == "Checksum":
                    self.state = self.IN_CHECKSUM
                else:
                    self.state = self.IN_VALUE
            else:
                self.key += chr(byte)
        elif self.state == self.IN_VALUE:
            self.bytes_sum += byte
            if byte == 0x0D:
                self.state = self.WAIT_HEADER
                self.block[self.key] = self.value
                self.key = ""
                self.value = ""
            else:
                self.value += chr(byte)
        elif self.state == self.IN_CHECKSUM:
            self.bytes_sum += byte
            self.key = ""
            self.value = ""
            self.state = self.WAIT_HEADER
            if self.bytes_sum % 256 == 0:
                self.on_block(self.block)
            self.block = {}
            self.bytes_sum = 0
        elif self.state == self.HEX:
            self.bytes_sum = 0
            if byte == 0x0A:
                self.state = self.WAIT_HEADER

    def feed(self, data):
        for b in data:
            self.input(b)


SCALE = {"V": 1000, "VS": 1000, "I": 1000, "CE": 1000, "SOC": 10, "VPV": 1000, "IL": 1000, "H20": 100}


def naive_decode(block):
    out = {}
    for k, v in block.items():
        try:
            out[k] = int(v) / SCALE.get(k, 1)
        except ValueError:
            out[k] = v
    return out
