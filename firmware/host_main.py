# Entry point under the MicroPython unix port (vegw sim): the same app as
# main.py on the board, with the host platform. The working directory is the
# simulated device's filesystem (OTA replaces files there).
import sys

import clock

# A board's ticks wrap at 2**30 ms (12.4 days): the simulator's wrap 15 s
# after boot, so every run crosses it.
clock.offset = (1 << 30) - 15000


duration = None
if "--duration" in sys.argv:
    duration = float(sys.argv[sys.argv.index("--duration") + 1])
import startup  # noqa: E402


def _platform():
    from drivers import platform_host

    return platform_host.Platform()


def _reset():
    print("vegw: reset")
    sys.exit(3)  # the simulator boots the firmware again, as a board does


rc = startup.run(_platform, clock.ticks_ms, _reset, duration)
if rc == "restart":  # config validated and cached: boot again, as the board does
    print("vegw: restart")
    sys.exit(4)
sys.exit(rc)
