# Runs first on every boot: nothing that can fail here (the REPL must come up).
# Board builds freeze firmware/lib into the image (boards/*/manifest.py), and
# MicroPython looks in ".frozen" before "/lib": put /lib first so a module
# replaced over the air (vegw ota) wins over its frozen copy.
import gc
import sys

if "/lib" in sys.path:
    sys.path.remove("/lib")
sys.path.insert(1 if sys.path and sys.path[0] == "" else 0, "/lib")
gc.collect()
