# Board entry point. A crash loop (three resets within five minutes, counted
# in RTC memory, which survives every reset but power loss) starts safe mode:
# no device readers, the REPL stays up, so the board can be fixed remotely.
import json
import sys
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


def _ota_boot():
    # Finish or roll back an OTA update before importing anything it replaces.
    # Only when ota.py left its journal: otherwise the module stays out of RAM.
    import os

    for name in ("ota_state.json", "ota_state.json.tmp"):
        try:
            os.stat(name)
            break
        except OSError:
            pass
    else:
        return None, []
    import ota

    rx = ota.OtaReceiver(ota.OsFs(), time.ticks_ms)
    replies = rx.boot_check()
    if not rx.pending():
        rx = None
        del sys.modules["ota"]  # loaded again only when an update arrives (a local name: gone on return)
    return rx, replies


_rx, _replies = _ota_boot()
_safe = _crash_loop()
if _safe:
    print("vegw: safe mode (crash loop): device readers off, uplink and REPL up")
from drivers import esp32  # noqa: E402
import app  # noqa: E402

if app.main(esp32.Platform(_board()), None, _rx, _replies, _safe) == app.RESTART:
    # config validated and cached: boot again on a clean heap; not a crash
    _forget_boot()
    machine.soft_reset()
