# Entry point under the MicroPython unix port (vegw sim): the same app as
# main.py on the board, with the host platform.
import sys

from drivers import host  # noqa: E402
import app  # noqa: E402

duration = None
if "--duration" in sys.argv:
    duration = float(sys.argv[sys.argv.index("--duration") + 1])
sys.exit(app.main(host.Platform(), duration))
