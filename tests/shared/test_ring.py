# ring.Ring: the one bounded FIFO (outbox, alarm events, modem lines).
from ring import Ring


def test_fifo_order_and_wrap():
    r = Ring(3)
    assert len(r) == 0 and r.pop() is None and r.peek() is None
    for i in range(10):  # wraps the slots many times
        assert r.put(i) is None
        assert r.peek() == i and r.pop() == i
    assert r.dropped == 0 and len(r) == 0


def test_full_ring_drops_the_oldest_and_counts():
    r = Ring(3)
    for i in range(5):
        r.put(i)
    assert len(r) == 3 == r.size and r.dropped == 2
    assert [r[i] for i in range(3)] == [2, 3, 4]
    r[1] = "x"
    assert [r.pop(), r.pop(), r.pop(), r.pop()] == [2, "x", 4, None]


def test_popped_slots_hold_no_reference():
    r = Ring(2)
    r.put([1])
    r.pop()
    assert r._q == [None, None]


def test_users_share_it():
    import alarm_engine
    import at_parse
    import outbox

    o = outbox.Outbox(size=2)
    for i in range(3):
        o.put("t%d" % i, b"x")
    assert len(o) == 2 and o.dropped == 1 and o.pop()[0] == "t1" and o.bytes == 1
    s = at_parse.LineSplitter()
    s.feed(b"".join(b"L%d\r\n" % i for i in range(40)))
    assert s.dropped_lines > 0 and s.pop() is not None
    assert isinstance(alarm_engine.Engine([])._box, Ring)
