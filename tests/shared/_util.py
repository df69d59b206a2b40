# Helpers for shared tests: these files run under CPython (pytest) and under
# the MicroPython unix port (tests/mprun.py), so they use plain asserts and
# only the language subset both runtimes share.
import sys

import rng  # one PRNG for firmware and tests

IS_MICROPYTHON = sys.implementation.name == "micropython"

try:
    import pytest

    SkipTest = pytest.skip.Exception
except ImportError:

    class SkipTest(Exception):
        pass


def skip(reason):
    raise SkipTest(reason)


def raises(exc, fn, *args, **kw):
    """Call fn and return the exception of type exc it raised; fail otherwise."""
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("did not raise " + exc.__name__)


def fixture_path(name):
    # Both runners start in the repository root.
    return "tests/fixtures/" + name


def read_fixture(name):
    with open(fixture_path(name), "rb") as f:
        return f.read()


class Rng(rng.Rng):
    """The firmware's seeded xorshift32 (same sequence on both runtimes, so a
    fuzz case that fails on one runtime can be replayed on the other), with a
    default seed and random bytes for the tests."""

    def __init__(self, seed=1):
        super().__init__(seed)

    def bytes(self, n):
        return bytes(self.next() & 0xFF for _ in range(n))


def ve_block(fields):
    """A VE.Direct text block of (label, value) bytes pairs, with its checksum."""
    body = b""
    for lab, val in fields:
        body += b"\r\n" + lab + b"\t" + val
    body += b"\r\nChecksum\t"
    return body + bytes(((256 - sum(body)) & 0xFF,))
