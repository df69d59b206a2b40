"""vegw host tools: the `vegw` CLI, stream/advert generators, simulator.

The firmware's shared modules (firmware/lib) are imported from the repository
this package is installed from (`pip install -e .`), so the CLI runs the very
parser, decoder, schema and rule engine that go on the board.
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
LIB = FIRMWARE / "lib"

for _p in (str(LIB), str(FIRMWARE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

__version__ = "0.1.0"
