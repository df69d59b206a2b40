# Board entry point. A crash loop (three resets within five minutes, counted
# in RTC memory, which survives every reset but power loss) starts safe mode:
# no device readers, the REPL stays up, so the board can be fixed remotely.
# The OTA journal check and the guarded start are in startup.py (shared with
# the simulator's host_main.py).
import json
import time

import machine

_LOOP_WINDOW_S = 300
_LOOP_RESETS = 3


def _crash_loop():
    rtc = machine.RTC()
    try:
        hist = json.loads(rtc.memory() or b"[]")
    except ValueError:
        hist = []
    now = time.time()
    if machine.reset_cause() == machine.PWRON_RESET:
        hist = []
    hist = [t for t in hist if now - t < _LOOP_WINDOW_S] + [now]
    rtc.memory(json.dumps(hist[-_LOOP_RESETS:]).encode())
    return len(hist) >= _LOOP_RESETS


def _forget_boot():
    rtc = machine.RTC()
    try:
        hist = json.loads(rtc.memory() or b"[]")
    except ValueError:
        return
    rtc.memory(json.dumps(hist[:-1]).encode())


def _board():
    try:
        with open("board.json") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


_safe = _crash_loop()
if _safe:
    print("vegw: safe mode (crash loop): device readers off, uplink and REPL up")
import startup  # noqa: E402


def _platform():
    from drivers import platform_esp32

    return platform_esp32.Platform(_board())


def _arm():
    # an update awaits its health report: a hung start must reset the board
    # (the app feeds this watchdog once it runs)
    machine.WDT(timeout=120000)


import clock  # noqa: E402

if startup.run(_platform, clock.ticks_ms, machine.reset, safe=_safe, arm_watchdog=_arm) == "restart":
    # config validated and cached: boot again on a clean heap; not a crash
    _forget_boot()
    machine.soft_reset()
