"""Property tests of lib/records.py (CPython, hypothesis): any layout and any
sequence of minutes round-trips exactly through MinuteEncoder/MinuteDecoder,
and value sets through encode_values/decode_values."""
from hypothesis import given, settings, strategies as st

import records as R
import records_dec

FIELDS = ["V", "I", "PPV", "SOC", "CE", "TTG", "CS", "LOAD", "H20", "AC_OUT_V", "odd_one"]
ints = st.integers(min_value=-(1 << 45), max_value=1 << 45)
small = st.integers(min_value=-3000, max_value=3000)


def _row(draw, fields, prob_none):
    row = []
    for f in fields:
        if draw(st.integers(0, 99)) < prob_none:
            row.append(None)
            continue
        kind = R.res(f)[1]
        base = draw(st.one_of(small, ints) if draw(st.integers(0, 9)) == 0 else small)
        if kind == R.KIND_ANALOG:
            row.append((base - draw(st.integers(0, 500)), base, base + draw(st.integers(0, 500))))
        elif kind == R.KIND_BOOL:
            row.append(draw(st.integers(0, 1)))
        else:
            row.append(base)
    return row


@st.composite
def scenario(draw):
    ndev = draw(st.integers(1, 4))
    layout = []
    for d in range(ndev):
        fs = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=8, unique=True))
        layout.append(("dev%d" % d, fs))
    minutes = []
    t = 1700000000
    for _ in range(draw(st.integers(1, 25))):
        t += draw(st.sampled_from([60, 60, 60, 59, 61, 120, 3600, 70000]))
        rows = [None if draw(st.integers(0, 9)) == 0 else _row(draw, fs, 15) for _, fs in layout]
        minutes.append((t, rows))
    return layout, minutes, draw(st.integers(1, 8)), draw(st.integers(1, 20))


def _expect(layout, rows):
    out = {}
    for (name, fs), row in zip(layout, rows):
        if row is None:
            continue
        vals = {}
        for f, v in zip(fs, row):
            if v is None:
                continue
            dec, kind = R.res(f)
            vals[f] = ([records_dec.from_scaled(x, dec) for x in v] if kind == R.KIND_ANALOG
                       else records_dec.from_scaled(v, dec, kind))
        out[name] = vals
    return out


@settings(max_examples=120, deadline=None)
@given(scenario())
def test_minutes_round_trip_exactly(sc):
    layout, minutes, per_record, key_every = sc
    enc = R.MinuteEncoder(layout, key_every=key_every, per_record=per_record)
    recs = []
    for t, rows in minutes:
        recs += enc.add(t, rows)
    last = enc.take()
    if last:
        recs.append(last)
    assert enc.refused == 0
    dec = records_dec.MinuteDecoder()
    got = []
    for rtype, p in recs:
        assert len(p) <= 1000
        out = dec.decode(rtype, p)
        assert out is not None
        got += out
    assert [m["t"] for m in got] == [t for t, _ in minutes]
    for m, (t, rows) in zip(got, minutes):
        assert m["devices"] == _expect(layout, rows)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FIELDS + ["x_count", "uptime"]),
                          st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9),
                                    st.floats(-1e6, 1e6, allow_nan=False))), max_size=40),
       st.integers(0, 2**32))
def test_value_sets_round_trip_at_field_resolution(pairs, t):
    names = [n for n, _ in pairs]
    values = [v for _, v in pairs]
    got = records_dec.decode_values(records_dec.encode_values(names, values, t))
    assert got is not None and got[0] == t
    want = {}
    for n, v in pairs:
        dec, kind = R.res(n)
        want[n] = records_dec.from_scaled(R.to_scaled(v, dec), dec, kind)
    assert got[1] == want


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([R.T_KEY, R.T_DELTA]))
def test_decoders_never_raise_on_arbitrary_bytes(b, rtype):
    out = records_dec.MinuteDecoder().decode(rtype, b)
    assert out is None or isinstance(out, list)
    assert records_dec.decode_values(b) is None or isinstance(records_dec.decode_values(b), tuple)
    assert records_dec.decode_event(b) is None or isinstance(records_dec.decode_event(b), dict)
