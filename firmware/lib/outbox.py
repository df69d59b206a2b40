# The live messages waiting for the uplink (states, status, replies,
# notices): a bounded FIFO of (topic, payload bytes, qos, retain), bounded by
# count and by payload bytes (heap, not count, is scarce on the board); when
# full the oldest is dropped and counted. A newer retained message (or one
# put with replace=True) takes the place of a queued one of the same topic.
from ring import Ring

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAX_OUT = const(48)  # live messages waiting for the uplink; oldest dropped
_MAX_OUT_BYTES = const(8192)  # payload bytes the outbox may hold


class Outbox:
    """Bounded FIFO of (topic, payload bytes, qos, retain)."""

    def __init__(self, size=_MAX_OUT):
        self._q = Ring(size)
        self.dropped = 0
        self.coalesced = 0
        self.high_water = 0
        self.bytes = 0  # payload bytes held

    def put(self, topic, payload, qos=0, retain=False, replace=False):
        """replace: a newer message of the same topic supersedes a queued one
        (a device's retained state, the status): the broker or the reader
        would only keep the last anyway."""
        q = self._q
        if retain or replace:
            for i in range(len(q)):
                m = q[i]
                if m[0] == topic:
                    self.bytes += len(payload) - len(m[1])
                    q[i] = (topic, payload, qos, retain)
                    self.coalesced += 1
                    return
        while len(q) and (len(q) == q.size or self.bytes + len(payload) > _MAX_OUT_BYTES):
            self.pop()  # drop the oldest: bounded by count and by bytes
            self.dropped += 1
        q.put((topic, payload, qos, retain))
        self.bytes += len(payload)
        if len(q) > self.high_water:
            self.high_water = len(q)

    def peek(self):
        return self._q.peek()

    def pop(self):
        m = self._q.pop()
        if m is not None:
            self.bytes -= len(m[1])
        return m

    def __len__(self):
        return len(self._q)
