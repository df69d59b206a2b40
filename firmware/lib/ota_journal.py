# The OTA journal: what survives a reset while an update is swapped in and
# on trial, and the boot check that acts on it. Split from the receiver
# (ota_rx.py) so a boot with an update on trial loads only this (startup.py,
# the one boot path of main.py and host_main.py); the receiver is imported
# when an OTA message arrives.
#
# Files on the device for path P: P.new (being received / verified),
# P.bak (the previous P while the update awaits health), and one journal
# ota_state.json (written through ota_state.json.new) whose "state" is
#   swap      -> files are being swapped in (boot_check rolls forward)
#   pending   -> swapped; waiting for mark_healthy() (rollback on timeout
#                or after max_boots boots without it)
#   rollback  -> restoring .bak files (boot_check finishes it)
#   clean     -> healthy; deleting .bak files (boot_check finishes it)
# Every step is idempotent, so a power cut at any point leaves either the
# old or the new set of files after the next boot_check(), never a mix.
#
# Boot order (startup.ota_boot): j = OtaJournal(OsFs(), time.ticks_ms);
# publish later what j.boot_check() returns -- call it BEFORE importing any
# module an update may replace; call tick() about once a second and
# mark_healthy() once the new firmware has proven itself (connected to the
# broker for the health time).
import sys

import osfs
from clock import ticks_diff

STATE = "ota_state.json"
VERSION_FILE = "ota_version.json"
_TMP = ".new"
_BAK = ".bak"


class OtaJournal:
    """An update's trial across boots. `fs` is osfs.OsFs() or any object with
    open/size/remove/rename/mkdir; `now_ms()` returns ticks in ms."""

    _m = None  # the receiver's active manifest (ota_rx): none here

    def __init__(self, fs, now_ms, health_timeout_ms=120000, max_boots=2):
        self.fs = fs
        self.now_ms = now_ms
        self.health_timeout_ms = health_timeout_ms
        self.max_boots = max_boots  # boots allowed without a health report
        self.stats = {"errors": 0}
        self._pending = None  # journal dict while an update awaits health
        # True once this run booted into the pending update: only then can it
        # prove itself (the run that committed it still runs the old code)
        self._booted = False
        self._since = 0

    def boot_check(self):
        """Call once at boot, before importing modules an update may replace.
        Finishes an interrupted swap/rollback/cleanup, counts boots of a
        pending update and rolls back after max_boots. Returns reply dicts."""
        st = self._load()
        if st is None:
            return []
        s = st.get("state")
        if s == "swap":
            self._swap(st)
            st["state"] = "pending"
            st["boots"] = 0
            self._save(st)
            s = "pending"
        if s == "rollback":
            self._restore(st)
            return [self._r("rolled_back", st, reason=st.get("reason", "interrupted rollback"), reboot=False)]
        if s == "clean":
            self._clean(st)
            return [self._r("healthy", st)]
        if s != "pending":
            self._drop_state()
            self.stats["errors"] += 1
            return [self._r("error", reason="unknown journal state dropped")]
        boots = st.get("boots", 0) + 1
        if boots > self.max_boots:
            st["reason"] = "no health report after %d boots" % (boots - 1)
            self._rollback(st)
            # Nothing updated has been imported yet (boot_check runs first),
            # so the restored files are what this boot will load.
            return [self._r("rolled_back", st, reason=st["reason"], reboot=False)]
        st["boots"] = boots
        self._save(st)
        self._pending = st
        self._booted = True
        self._since = self.now_ms()
        return [self._r("pending", st, boot=boots, timeout_s=self.health_timeout_ms // 1000)]


    def tick(self):
        """Call periodically: rolls back a pending update whose health report
        did not come within health_timeout_ms of boot (or commit)."""
        st = self._pending
        if st is None or ticks_diff(self.now_ms(), self._since) < self.health_timeout_ms:
            return []
        st["reason"] = "no health report within %d s" % (self.health_timeout_ms // 1000)
        self._rollback(st)
        return [self._r("rolled_back", st, reason=st["reason"], reboot=True)]


    def mark_healthy(self):
        """The new firmware works: drop the .bak files and the journal.
        Ignored in the run that committed the update: the old code is what
        runs until the reset, and it proves nothing about the new one."""
        st = self._pending
        if st is None or not self._booted:
            return []
        st["state"] = "clean"
        self._save(st)
        self._clean(st)
        return [self._r("healthy", st)]


    def pending(self):
        return self._pending is not None


    def status(self):
        """The pending update, or what runs (idle)."""
        if self._pending is not None:
            return self._r("pending", self._pending, boot=self._pending.get("boots", 0))
        cur = self._read_json(VERSION_FILE) or {}
        # mpy: the .mpy format this firmware loads (None on CPython), so the
        # host compiles what it sends to match
        return {"state": "idle", "version": cur.get("version"), "id": cur.get("id"),
                "mpy": getattr(sys.implementation, "_mpy", None)}

    # ---- journal steps (each idempotent) -------------------------------
    def _swap(self, st):
        for path, existed in st["files"]:
            tmp = path + _TMP
            if self.fs.size(tmp) is None:
                continue  # already swapped
            if self.fs.size(path) is not None:
                if existed and self.fs.size(path + _BAK) is None:
                    self.fs.rename(path, path + _BAK)
                else:
                    self.fs.remove(path)
            self.fs.rename(tmp, path)
        for path in st.get("gone", ()):
            if self.fs.size(path) is not None:
                if self.fs.size(path + _BAK) is None:
                    self.fs.rename(path, path + _BAK)
                else:
                    self.fs.remove(path)

    def _rollback(self, st):
        st["state"] = "rollback"
        self._save(st)
        self._restore(st)

    def _restore(self, st):
        for path, existed in st["files"]:
            self._rm(path + _TMP)
            if existed:
                if self.fs.size(path + _BAK) is not None:
                    self._rm(path)
                    self.fs.rename(path + _BAK, path)
            else:
                self._rm(path)
        for path in st.get("gone", ()):
            if self.fs.size(path + _BAK) is not None:
                self._rm(path)
                self.fs.rename(path + _BAK, path)
        self._drop_state()
        self._pending = None

    def _clean(self, st):
        for path, existed in st["files"]:
            self._rm(path + _BAK)
        for path in st.get("gone", ()):
            self._rm(path + _BAK)
        self._write_json(VERSION_FILE, {"version": st.get("version"), "id": st.get("id")})
        self._drop_state()
        self._pending = None

    # ---- helpers --------------------------------------------------------
    def _r(self, state, st=None, **kw):
        src = st if st is not None else self._m
        d = {"state": state}
        if src is not None:
            d["id"] = src["id"]
            d["version"] = src.get("version")
        for k in kw:
            d[k] = kw[k]
        return d

    def _rm(self, path):
        osfs.rm(self.fs, path)

    def _read_json(self, path):
        return osfs.read_json(self.fs, path)

    def _write_json(self, path, d):
        osfs.write_json(self.fs, path, d, _TMP)

    def _save(self, st):
        self._write_json(STATE, st)

    def _load(self):
        st = osfs.load_journal(self.fs, STATE, _TMP)
        if st is not None and not isinstance(st.get("files"), list):
            self._drop_state()
            return None
        return st

    def _drop_state(self):
        self._rm(STATE)
        self._rm(STATE + _TMP)
