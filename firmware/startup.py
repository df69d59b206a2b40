# The boot path both entry points share (main.py on the board, host_main.py in
# the simulator). It runs before anything an update may have replaced and
# keeps a broken update from leaving the gateway at a dead REPL:
#   1. the OTA journal: finish or roll back an interrupted swap, count the
#      boots of an update that has not reported healthy yet (ota_journal.py
#      rolls back after max_boots);
#   2. the app is imported and run inside a guard: an exception at import or
#      start (a broken app.py from OTA) is printed and the board resets, so
#      the next boot counts again and the journal rolls the update back.
# While an update awaits its health report the hardware watchdog is armed
# before the app is imported (arm_watchdog), so a hang resets too. Not on
# every boot: once armed it cannot be stopped, and a board left at the REPL
# (no config yet) must not reset under the installer's hands.
import sys


def _journal(names=("ota_state.json", "ota_state.json.tmp")):
    # an update is in progress only if the OTA journal is there: otherwise
    # the OTA modules (~100 interned names) stay out of RAM
    import os

    for name in names:
        try:
            os.stat(name)
            return True
        except OSError:
            pass
    return False


def ota_boot(ticks_ms):
    """(ota_journal.OtaJournal of the update on trial, or None; replies)
    after the journal's boot check. The receiver (ota_rx) is not loaded
    here: the app loads it when an OTA message arrives."""
    if not _journal():
        return None, []
    try:
        import ota_journal
        import osfs
    except Exception as e:  # noqa: BLE001 - a broken ota_journal.py must not stop the boot
        print("vegw: ota journal unusable:", repr(e))
        return None, []
    j = ota_journal.OtaJournal(osfs.OsFs(), ticks_ms)
    replies = j.boot_check()
    if not j.pending():
        j = None
        sys.modules.pop("ota_journal", None)  # loaded again with the receiver
    return j, replies


def config_boot(ticks_ms):
    """(cfg_push.ConfigPush, replies) when a pushed config.json is on trial
    or has something to report (its journal is there), else None. Before
    the config is read: a rollback here boots with the previous one."""
    if not _journal(("config_push.json", "config_push.json.new")):
        return None
    try:
        import cfg_push
        import osfs

        job = cfg_push.ConfigPush(osfs.OsFs(), ticks_ms)
        return job, job.boot_check()
    except Exception as e:  # noqa: BLE001 - the boot goes on with the config that is there
        print("vegw: config push journal unusable:", repr(e))
        return None


def run(make_platform, ticks_ms, reset, duration_s=None, safe=False, arm_watchdog=None):
    """Boot check, then app.main(platform, ...) under the guard. Returns what
    app.main returned ("restart" for app.RESTART); calls reset() (which does
    not return on a board) when the app cannot be imported or dies at start."""
    rx, replies = ota_boot(ticks_ms)
    job = config_boot(ticks_ms)
    if (rx is not None or (job is not None and job[0].pending())) and arm_watchdog is not None:
        arm_watchdog()
    try:
        import app

        rc = app.main(make_platform(), duration_s, rx, replies, safe, job)
        return "restart" if rc == app.RESTART else rc
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - whatever an update broke
        print("vegw: the gateway failed to start:", repr(e))
        if hasattr(sys, "print_exception"):  # MicroPython: where it broke
            sys.print_exception(e)
        print("vegw: reset (an update that keeps failing is rolled back by the OTA journal)")
        reset()
        return None
