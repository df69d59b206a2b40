# One seeded PRNG for the firmware and the tests: link_manager's backoff
# jitter, the simulated modem's noise, the shared tests' random data. Small
# on purpose: the tests import it under an ESP32-sized heap.


class Rng:
    """Seeded xorshift32: the same sequence on both runtimes (backoff jitter
    here; the simulated modem's noise uses it too)."""

    def __init__(self, seed):
        self.s = (seed or 1) & 0xFFFFFFFF

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def below(self, n):
        return self.next() % n
