# Simulated radio neighbourhood for the BLE scanner tests, soak and bench:
# any number of other advertisers (phones, tags) with rotating random
# addresses, delivered through ble_host.FakeBLE. Split from ble_host.py so
# the simulator's gateway does not hold it (reached as
# ble_host.Neighbourhood). Runs on the unix port and CPython.


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
