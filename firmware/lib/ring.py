# One bounded FIFO of objects, for every queue that must never grow: when
# full, put() drops the oldest and counts it. The slots are allocated once;
# a popped slot is cleared so the ring holds no reference to it. Used by the
# uplink outbox (outbox.py), the alarm engine's event box and the modem's
# line queue (at_parse.py). Not by the BLE scanner (drivers/ble_scan.py): its
# producer is an IRQ handler, which may not allocate nor take the oldest, so
# it keeps preallocated byte slots and drops the newest.


class Ring:
    def __init__(self, size):
        self.size = size
        self._q = [None] * size
        self._h = 0  # index of the oldest
        self._n = 0
        self.dropped = 0  # items lost to a full ring (oldest first)

    def put(self, x):
        """Append; a full ring drops its oldest first (counted). Returns the
        item dropped, or None."""
        old = self.pop() if self._n == self.size else None
        if old is not None:
            self.dropped += 1
        self._q[(self._h + self._n) % self.size] = x
        self._n += 1
        return old

    def pop(self):
        """Remove and return the oldest, or None when empty."""
        if not self._n:
            return None
        x = self._q[self._h]
        self._q[self._h] = None
        self._h = (self._h + 1) % self.size
        self._n -= 1
        return x

    def peek(self):
        return self._q[self._h] if self._n else None

    def __getitem__(self, i):
        """ring[i]: the i-th oldest (0 = the oldest); i < len(ring)."""
        return self._q[(self._h + i) % self.size]

    def __setitem__(self, i, x):
        self._q[(self._h + i) % self.size] = x

    def __len__(self):
        return self._n
