# A new config.json over MQTT (issue 19), kept only if the gateway comes
# back healthy with it. The laptop (`vegw config push`) validates first, then
# sends the file in parts and one signed apply:
#   {"cmd":"config_part","id":I,"part":k,"parts":n,"data":HEX}  k = 0..n-1, in order
#   {"cmd":"config_apply","id":I,"size":S,"sha256":H,"ctr":C,"gw":G,"sig":...}
# Parts go straight to config.json.new (no RAM for the file); the apply is
# signed like every command that changes the gateway (proof.check_cmd, the
# app checks it), names the file by size and hash, and the gateway validates
# it against its own board with the same schema as `vegw config validate`:
# an error is refused with its path, nothing changed.
#
# Journal config_push.json (written beside, then renamed), like ota_journal.py's:
#   swap      -> config.json becomes config.json.bak, .new becomes config.json
#   pending   -> running the new config; boots counted; healthy once the
#                gateway was connected healthy_after s in a boot that started
#                with it; rolled back after max_boots boots or health_timeout
#   rollback  -> config.json.bak back in place (boot_check finishes it)
#   report    -> rolled back while running (no broker with the new config):
#                the reply waits here for the boot that has the old one back
# Each step is idempotent: a power cut anywhere leaves the old or the new
# file after the next boot_check(), never none. The run that applied a config
# cannot call it healthy: it still runs the old one until its reset.
import json

import osfs
from clock import ticks_diff

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


CONFIG = "config.json"
JOURNAL = "config_push.json"
_NEW = ".new"
_BAK = ".bak"
MAX_SIZE = const(16384)  # bytes of a pushed config.json
MAX_PARTS = const(32)


class ConfigPush:
    def __init__(self, fs, now_ms, max_boots=2, health_timeout_ms=300000):
        self.fs = fs
        self.now_ms = now_ms
        self.max_boots = max_boots
        self.health_timeout_ms = health_timeout_ms
        self._id = None  # the push being received
        self._next = 0  # the part expected next
        self._got = 0  # bytes received
        self._pending = None  # journal while a config awaits health
        self._booted = False  # this run started with the pending config
        self._since = 0

    # ---- receiving ------------------------------------------------------
    def part(self, msg):
        """One part of a push; a reply dict."""
        pid, k, n, data = msg.get("id"), msg.get("part"), msg.get("parts"), msg.get("data")
        if type(k) is not int or type(n) is not int or not 0 < n <= MAX_PARTS or not 0 <= k < n \
                or not isinstance(data, str) or not isinstance(pid, str):
            return self._r("error", pid, reason="malformed part")
        if self._pending is not None:
            return self._r("error", pid, reason="busy: a pushed config awaits its health check")
        if k == 0:
            self._id, self._next, self._got = pid, 0, 0
            self._rm(CONFIG + _NEW)
        if pid != self._id or k != self._next:
            return self._r("error", pid, reason="part %d out of order (want %d of %s)" % (k, self._next, self._id))
        try:
            import binascii

            raw = binascii.unhexlify(data)
        except (ValueError, TypeError):
            return self._r("error", pid, reason="part %d is not hex" % k)
        if self._got + len(raw) > MAX_SIZE:
            self._drop()
            return self._r("error", pid, reason="config over %d bytes" % MAX_SIZE)
        f = self.fs.open(CONFIG + _NEW, "ab")
        try:
            f.write(raw)
        finally:
            f.close()
        self._got += len(raw)
        self._next = k + 1
        return self._r("received" if k + 1 == n else "part_ok", pid, part=k, size=self._got)

    def apply(self, msg, board):
        """The signed apply (its proof checked by the caller): size, hash and
        schema of config.json.new; then the swap. A reply dict; "reboot"
        True when the gateway must boot into it."""
        pid = msg.get("id")
        if self._pending is not None:
            return self._r("error", pid, reason="busy: a pushed config awaits its health check")
        size = self.fs.size(CONFIG + _NEW)
        if pid != self._id or size is None:
            return self._r("error", pid, reason="no such push received")
        if size != msg.get("size") or self._sha(CONFIG + _NEW) != msg.get("sha256"):
            self._drop()
            return self._r("error", pid, reason="size or sha256 differ from the parts received")
        path, why = self._validate(board)
        if why is not None:
            self._drop()
            return self._r("refused", pid, path=path, reason=why)
        st = {"state": "swap", "id": pid, "boots": 0}
        self._save(st)
        self._swap()
        st["state"] = "pending"
        self._save(st)
        self._id = None
        self._pending = st  # not _booted: this run keeps the old config
        self._since = self.now_ms()
        return self._r("applied", pid, reboot=True)

    def _validate(self, board):
        try:
            f = self.fs.open(CONFIG + _NEW, "rb")
            try:
                cfg = json.loads(f.read())
            finally:
                f.close()
        except (ValueError, OSError, UnicodeError) as e:
            return "", "not valid JSON: %s" % (e,)
        import cfg_schema  # interns its names: the gateway reboots after an apply anyway

        _, errors = cfg_schema.validate(cfg, board)
        if errors:
            return errors[0][0], errors[0][1]
        return None, None

    # ---- boots and health ------------------------------------------------
    def boot_check(self):
        """At boot, before the config is read: finish an interrupted swap or
        rollback, count the boots of a pending config, roll back after
        max_boots. Returns replies to publish once connected."""
        st = self._load()
        if st is None:
            return []
        s = st.get("state")
        if s == "swap":
            self._swap()
            st["state"] = "pending"
            st["boots"] = 0
            self._save(st)
            s = "pending"
        if s == "report":
            self._rm(JOURNAL)
            r = st.get("reply")
            return [r] if isinstance(r, dict) else []
        if s == "rollback":
            self._restore()
            return [self._r("rolled_back", st.get("id"), reason=st.get("reason", "interrupted rollback"))]
        if s != "pending":
            self._rm(JOURNAL)
            return []
        boots = st.get("boots", 0) + 1
        if boots > self.max_boots:
            st["reason"] = "no health report after %d boots" % (boots - 1)
            self._rollback(st)
            return [self._r("rolled_back", st.get("id"), reason=st["reason"])]
        st["boots"] = boots
        self._save(st)
        self._pending = st
        self._booted = True
        self._since = self.now_ms()
        return [self._r("trying", st.get("id"), boot=boots, timeout_s=self.health_timeout_ms // 1000)]

    def pending(self):
        return self._pending is not None

    def tick(self):
        """Rolls back a booted config that got no health within the timeout
        (a wrong broker, a Wi-Fi that never joins). True: reboot now (into
        the old config); the reply is published by the boot after it."""
        st = self._pending
        if st is None or not self._booted or ticks_diff(self.now_ms(), self._since) < self.health_timeout_ms:
            return False
        st["reason"] = "not healthy within %d s" % (self.health_timeout_ms // 1000)
        self._rollback(st)
        self._save({"state": "report", "reply": self._r("rolled_back", st.get("id"), reason=st["reason"])})
        return True

    def mark_healthy(self):
        st = self._pending
        if st is None or not self._booted:
            return []
        self._rm(CONFIG + _BAK)
        self._rm(JOURNAL)
        self._pending = None
        return [self._r("healthy", st.get("id"))]

    # ---- journal steps (each idempotent) ---------------------------------
    def _swap(self):
        if self.fs.size(CONFIG + _NEW) is None:
            return  # done already
        if self.fs.size(CONFIG) is not None:
            if self.fs.size(CONFIG + _BAK) is None:
                self.fs.rename(CONFIG, CONFIG + _BAK)
            else:
                self.fs.remove(CONFIG)
        self.fs.rename(CONFIG + _NEW, CONFIG)

    def _rollback(self, st):
        st["state"] = "rollback"
        self._save(st)
        self._restore()

    def _restore(self):
        if self.fs.size(CONFIG + _BAK) is not None:
            self._rm(CONFIG)
            self.fs.rename(CONFIG + _BAK, CONFIG)
        self._rm(JOURNAL)
        self._pending = None

    # ---- helpers -----------------------------------------------------------
    def _r(self, state, pid, **kw):
        kw["state"] = state
        kw["id"] = pid
        return kw

    def _drop(self):
        self._rm(CONFIG + _NEW)
        self._id = None
        self._next = 0
        self._got = 0

    def _rm(self, path):
        osfs.rm(self.fs, path)

    def _sha(self, path):
        return osfs.sha256_hex(self.fs, path, bytearray(256))

    def _save(self, st):
        osfs.write_json(self.fs, JOURNAL, st, _NEW)

    def _load(self):
        return osfs.load_journal(self.fs, JOURNAL, _NEW)
