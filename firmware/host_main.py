# Entry point under the MicroPython unix port (vegw sim): the same app as
# main.py on the board, with the host platform. The working directory is the
# simulated device's filesystem (OTA replaces files there).
import os
import sys
import time


def _journal():
    # An update is in progress only if ota.py left its journal: otherwise
    # the OTA module (and its ~100 names, interned for good) stays out of RAM.
    for name in ("ota_state.json", "ota_state.json.tmp"):
        try:
            os.stat(name)
            return True
        except OSError:
            pass
    return False


rx, replies = None, []
if _journal():
    import ota

    rx = ota.OtaReceiver(ota.OsFs(), time.ticks_ms)
    replies = rx.boot_check()  # before importing anything an update may replace
    if not rx.pending():
        rx = None
        del ota  # the name too, or the module stays alive
        del sys.modules["ota"]

from drivers import host  # noqa: E402
import app  # noqa: E402

duration = None
if "--duration" in sys.argv:
    duration = float(sys.argv[sys.argv.index("--duration") + 1])
platform = host.Platform()
rc = app.main(platform, duration, rx, replies)
if rc == app.RESTART:  # config validated and cached: boot again, as the board does
    print("vegw: restart")
    sys.exit(4)
sys.exit(rc)
