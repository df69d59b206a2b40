"""Property tests of the shared parser under CPython (hypothesis). The same
properties run under MicroPython as seeded loops in tests/shared."""
import sys
import pathlib

from hypothesis import given, settings, strategies as st

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "firmware" / "lib"))
sys.path.insert(0, str(ROOT / "host_tools"))

import vedirect  # noqa: E402
from vegw import vestream  # noqa: E402

DEVICES = [vestream.make(m, seed=3) for m in ("bmv712", "mppt", "inverter", "charger")]
BLOCKS = [b for d in DEVICES for _ in range(3) for b in (d.step() or d.blocks())]
TEXT_BLOCKS = [b for b in BLOCKS if not b.startswith(b":")]


def run(chunks):
    got = []
    p = vedirect.Parser(lambda b: got.append(b.raw()), lambda h: None)
    for c in chunks:
        p.feed(c)
    return p, got


@given(st.lists(st.binary(max_size=300), max_size=30))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_raise_and_buffer_never_grows(chunks):
    p, _ = run(chunks)
    assert len(p._buf) == vedirect._MAX_BLOCK + vedirect._MAX_FEED
    assert p.held <= vedirect._MAX_BLOCK


@given(st.lists(st.sampled_from(range(len(BLOCKS))), min_size=1, max_size=20),
       st.lists(st.integers(1, 200), min_size=1, max_size=50))
@settings(max_examples=300, deadline=None)
def test_valid_stream_any_chunking_recovers_every_block(order, sizes):
    stream = b"".join(BLOCKS[i] for i in order)
    chunks, i, k = [], 0, 0
    while i < len(stream):
        n = sizes[k % len(sizes)]
        chunks.append(stream[i:i + n])
        i += n
        k += 1
    p, got = run(chunks)
    want = [BLOCKS[i] for i in order if not BLOCKS[i].startswith(b":")]
    # raw() is the block without HEX frames: compare to the text blocks
    assert got == [w for w in want]
    assert p.checksum_errors == 0


@given(st.lists(st.sampled_from(range(len(TEXT_BLOCKS))), min_size=2, max_size=12),
       st.binary(min_size=1, max_size=40), st.data())
@settings(max_examples=300, deadline=None)
def test_junk_between_blocks_costs_no_block(order, junk, data):
    # junk without \r and ':' sits between blocks (line noise between
    # transmissions); every block after the first still verifies
    junk = bytes(b for b in junk if b not in (13, 58)) or b"x"
    stream = b"".join(TEXT_BLOCKS[i] + junk for i in order)
    p, got = run([stream])
    assert len(got) == len(order)
