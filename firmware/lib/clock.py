# Ticks in one place: ticks_ms / ticks_add / ticks_diff with the board's
# arithmetic on every runtime. On an ESP32 ticks_ms() wraps at 2**30 ms
# (about 12.4 days): `ticks_ms() + n` then leaves the range (a big int on the
# board) and a plain a - b is wrong across the wrap. MicroPython's own time
# functions are used where they exist; the CPython fallback wraps at 2**30
# too, as does the unix port's here (2**62 there), so the host tests and the
# simulator see what the board sees. `offset` lets a test or the simulator
# start the clock just before the wrap.

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_PERIOD = const(0x40000000)  # 2**30, TICKS_PERIOD of the ports
_MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)

import sys
import time as _time

offset = 0  # ms added to the clock off the board (tests start it near the wrap)

if sys.platform in ("esp32", "rp2", "pyboard"):  # a board: its own 2**30 ticks
    ticks_ms = _time.ticks_ms  # type: ignore[attr-defined]
    ticks_add = _time.ticks_add  # type: ignore[attr-defined]
    ticks_diff = _time.ticks_diff  # type: ignore[attr-defined]
else:
    # CPython, and the unix port, whose ticks wrap at 2**62 on 64-bit: both
    # get the board's 2**30 here, so the simulator wraps as a board does
    try:
        _raw = _time.ticks_ms  # type: ignore[attr-defined]
    except AttributeError:

        def _raw():
            return int(_time.monotonic() * 1000)  # type: ignore[attr-defined]

    def ticks_ms():
        return (_raw() + offset) & _MASK

    def ticks_add(t, delta):
        return (t + delta) & _MASK

    def ticks_diff(a, b):
        # signed difference a - b in [-2**29, 2**29), as MicroPython's
        return ((a - b + _HALF) & _MASK) - _HALF


def add(t, delta):
    """ticks_add on every runtime (the unix port's too)."""
    return ticks_add(t, delta)


def diff(a, b):
    return ticks_diff(a, b)
