"""`make bench`: run every bench/bench_*.py in turn and print its figures.

Figures are measurements, not pass/fail: each benchmark prints what it
measured next to its target so the gap (if any) is visible.
"""
import pathlib
import subprocess
import sys

here = pathlib.Path(__file__).resolve().parent
status = 0
for path in sorted(here.glob("bench_*.py")):
    print("=" * 72)
    print(path.name)
    print("=" * 72, flush=True)
    rc = subprocess.call([sys.executable, str(path)], cwd=str(here.parent))
    status = status or rc
sys.exit(status)
