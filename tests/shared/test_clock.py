# lib/clock.py: ticks with the board's 2**30 wrap on every runtime.
import clock


def test_add_and_diff_across_the_wrap():
    near = 0x3FFFFFFF - 500  # 500 ms before the wrap
    later = clock.ticks_add(near, 2000)
    assert 0 <= later < 0x40000000  # stays in range: never a big int
    assert later == 1499
    assert clock.ticks_diff(later, near) == 2000
    assert clock.ticks_diff(near, later) == -2000
    assert clock.add(5, -10) == 0x3FFFFFFB
    assert clock.diff(clock.add(5, -10), 5) == -10


def test_deadline_past_the_wrap():
    # the pattern the app and the link manager use: a deadline set before the
    # wrap is reached after it, exactly when due
    t0 = 0x3FFFFFFF - 100
    end = clock.ticks_add(t0, 300)
    for dt, due in ((0, False), (299, False), (300, True), (1000, True)):
        now = clock.ticks_add(t0, dt)
        assert (clock.ticks_diff(now, end) >= 0) == due, dt


def test_host_clock_wraps_too():
    clock.offset = 0x40000000 - 50  # start 50 ms before the wrap
    try:
        t0 = clock.ticks_ms()
        assert 0 <= t0 < 0x40000000
    finally:
        clock.offset = 0
