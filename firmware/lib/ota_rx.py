# Device side of OTA over MQTT (the receiver): replace the firmware's Python files (.py/.mpy,
# config files) on a remote gateway, chunked, each file hash-checked before it
# replaces the old one, with rollback when the new firmware does not report
# healthy in time. The MicroPython binary itself is never touched.
#
# The app subscribes to <prefix>/<gw>/ota/# and calls
#   replies = rx.handle(suffix, payload)   # suffix: text after "ota/"
# then publishes every reply dict (JSON) on <prefix>/<gw>/ota/status. A reply
# with "reboot": True asks the app to reset the board once it is published.
#
# Messages from the host (vegw ota):
#   ota/manifest  JSON {"id": str<=40, "sid": 0..65535, "version": str<=32,
#                 "files": [{"path": "lib/x.mpy", "size": n, "sha256": hex64}],
#                 "remove": ["lib/x.py"]}   optional: deleted at commit (kept
#                 as .bak until healthy), e.g. a .py that would shadow x.mpy
#   ota/chunk     binary: header "<BHHI" = fmt 1, sid, file index, offset
#                 (9 bytes), then 1.._MAX_CHUNK data bytes
#   ota/commit    JSON {"id": ...}   swap all received files in, then reboot
#   ota/abort     JSON {"id": ...}   drop the session and its temp files
# Manifest, commit and abort must carry "sig": hex HMAC-SHA256(key,
# signed_text(...)) with the gateway's own key (derived on the laptop from the
# operator's fleet key and the gateway id: derive_key(); a stolen board signs
# for nobody else). The signed text names the gateway ("gw") and a counter
# ("ctr", the host's clock in s) that must exceed the last one this gateway
# accepted (kept in ota_ctr.json): another gateway's update, a replayed
# update and a downgrade to an older signed one are refused and counted. The
# manifest signs every file's sha256, so chunks need no signature of their
# own. No key: every update is refused (key=None, unsigned=False); tests of
# the transfer itself pass unsigned=True.
#   ota/query     anything           reply with the current state
# Replies ("state"): need, recv, resend, file_ok, file_bad, ready, committed,
# pending, healthy, rolled_back, aborted, no_session, idle, error.
#
# The journal of an update on trial (swap, pending, rollback, clean) and the
# boot check are ota_journal.py: OtaReceiver is an OtaJournal that also
# takes the messages above (startup.py makes a plain OtaJournal at boot; the
# app makes the receiver when an OTA message arrives, adopting its state).
#
# Length: one protocol's receiver (manifest checks, chunks, commit, signatures;
# the journal is ota_journal.py); a tenth of it describes the protocol.
import json
import struct
import hashlib
import binascii

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_FMT = const(1)  # chunk header format byte
_HDR = const(9)  # struct.calcsize("<BHHI")
_MAX_CHUNK = const(1024)  # data bytes per chunk message (MQTT payload <= 1033)
_MAX_MANIFEST = const(2048)  # manifest JSON bytes (vegw ota splits a larger update; the MQTT receive buffer is 2112)
_MAX_FILES = const(48)  # files per update
_MAX_FILE_SIZE = const(262144)  # bytes per file (OTA build has 960 KB of fs)
_MAX_PATH = const(64)  # characters per path
_ACK_EVERY = const(8)  # chunks between "recv" progress replies (host window)
_BUF = const(512)  # read buffer for hashing files on flash
_SPACE_MARGIN = const(8192)  # free bytes kept beyond the update's size

_CTR_FILE = "ota_ctr.json"  # the highest signed counter accepted (no replay, no downgrade)
_PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"
_HEX = "0123456789abcdef"

import osfs  # noqa: E402
from osfs import OsFs  # noqa: E402,F401 - the device filesystem (also cfg_push's)
from ota_journal import _BAK, _TMP, STATE, VERSION_FILE, OtaJournal  # noqa: E402,F401


def _path_problem(p):
    if not isinstance(p, str) or not p:
        return "path must be a non-empty string"
    if len(p) > _MAX_PATH:
        return "path longer than %d characters" % _MAX_PATH
    for ch in p:
        if ch not in _PATH_CHARS:
            return "path has a character outside [A-Za-z0-9_-./]"
    if p[0] == "/":
        return "path must be relative to the device root"
    for part in p.split("/"):
        if part in ("", ".", ".."):
            return "path has an empty, . or .. component"
    if p.endswith(_TMP) or p.endswith(_BAK) or p in (STATE, STATE + _TMP, VERSION_FILE):
        return "path is reserved for OTA bookkeeping"
    return None


from proof import derive_key, hmac_sha256  # noqa: E402,F401 - also ota.* for the host tools
from proof import same as _same  # noqa: E402


def signed_text(kind, m):
    """The bytes a signature covers: kind "manifest" (m = the manifest dict),
    or "commit"/"abort" (m = {"id": ...}), each with "gw" and "ctr". Built
    field by field, never from JSON text (key order differs between
    runtimes)."""
    parts = [kind, str(m.get("id")), str(m.get("gw")), str(m.get("ctr"))]
    if kind == "manifest":
        parts.append(str(m.get("sid")))
        parts.append(str(m.get("version", "")))
        for f in m.get("files") or ():
            parts.append("%s:%s:%s" % (f.get("path"), f.get("size"), f.get("sha256")))
        parts.append("remove")
        for p in m.get("remove") or ():
            parts.append(str(p))
    return "\n".join(parts).encode()


def _sha_problem(s):
    if not isinstance(s, str) or len(s) != 64:
        return "sha256 must be 64 lowercase hex characters"
    for ch in s:
        if ch not in _HEX:
            return "sha256 must be 64 lowercase hex characters"
    return None


class OtaReceiver(OtaJournal):
    """See the module header for the protocol. `fs` is OsFs() or any object
    with open/size/remove/rename/mkdir(/free); `now_ms()` returns ticks in ms.
    journal: the OtaJournal of this boot (startup.py), whose pending update
    this receiver takes over."""

    def __init__(self, fs, now_ms, health_timeout_ms=120000, max_boots=2, key=None, gateway=None,
                 unsigned=False, journal=None):
        OtaJournal.__init__(self, fs, now_ms, health_timeout_ms, max_boots)
        self.key = key  # bytes: manifests/commits/aborts must be signed with it
        self.gateway = gateway  # the gateway id signed messages must name
        self.unsigned = unsigned  # tests of the transfer only: no signature asked
        # counters of what was refused or ignored (outside input never raises)
        self.stats = {"chunks": 0, "dup": 0, "stale": 0, "bad": 0, "rejected": 0, "errors": 0,
                      "unsigned": 0, "bad_sig": 0, "foreign": 0, "replayed": 0}
        self._buf = bytearray(_BUF)
        self._m = None  # active manifest: {"id", "sid", "version", "files": [[path, size, sha]]}
        self._need = None  # per file: True while it still has to be received
        self._cur = -1  # file being received
        self._f = None
        self._h = None
        self._off = 0
        self._n = 0  # chunks since the last "recv" reply
        self._asked = -1  # offset of the last "resend" request (asked once per gap)
        self._nosess = -1  # sid last answered with "no_session"
        if journal is not None:
            self._pending = journal._pending
            self._booted = journal._booted
            self._since = journal._since

    # ---- entry points -------------------------------------------------
    def handle(self, suffix, payload):
        """One message from <prefix>/<gw>/ota/<suffix>; returns reply dicts."""
        try:
            if suffix == "chunk":
                return self._chunk(payload)
            if suffix == "manifest":
                return self._manifest(payload)
            if suffix == "commit":
                return self._commit(payload)
            if suffix == "abort":
                return self._abort(payload)
            if suffix == "query":
                return [self.status()]
            if suffix != "status":  # our own replies come back on ota/#
                self.stats["rejected"] += 1
            return []
        except OSError as e:
            self.stats["errors"] += 1
            self._drop_file()
            return [self._r("error", reason="filesystem error %s" % (e.args[0] if e.args else e))]

    def status(self):
        if self._pending is None and self._m is not None:
            return self._r("receiving", need=self._needed())
        d = OtaJournal.status(self)
        if d["state"] == "idle":
            d["max_chunk"] = _MAX_CHUNK  # our chunk limit, for the host
        return d

    # ---- messages -----------------------------------------------------
    def _manifest(self, payload):
        if len(payload) > _MAX_MANIFEST:
            self.stats["rejected"] += 1
            return [{"state": "error", "reason": "manifest longer than %d bytes" % _MAX_MANIFEST}]
        try:
            m = json.loads(payload)
        except (ValueError, UnicodeError):
            self.stats["rejected"] += 1
            return [{"state": "error", "reason": "manifest is not JSON"}]
        files, why = self._check_manifest(m)
        if why:
            self.stats["rejected"] += 1
            return [{"state": "error", "id": m.get("id") if isinstance(m, dict) else None, "reason": why}]
        why = self._proof("manifest", m)
        if why:
            self.stats["rejected"] += 1
            return [{"state": "error", "id": m["id"], "reason": why}]
        ctr = m.get("ctr")
        if not self.unsigned:
            last = (self._read_json(_CTR_FILE) or {}).get("ctr", 0)
            if type(ctr) is not int or type(last) is not int or ctr <= last:
                self.stats["rejected"] += 1
                self.stats["replayed"] += 1
                return [{"state": "error", "id": m["id"],
                         "reason": "replayed or older update (counter %s, last accepted %s)" % (ctr, last)}]
        if self._pending is not None:
            self.stats["rejected"] += 1
            return [self._r("error", self._pending, reason="busy: update awaiting health report")]
        self._drop_session(files)
        gone = [p for p in m.get("remove", []) if self.fs.size(p) is not None]
        if not self.unsigned:
            self._write_json(_CTR_FILE, {"ctr": ctr})  # this counter is spent
        self._m = {"id": m["id"], "sid": m["sid"], "version": m.get("version", ""), "files": files, "gone": gone,
                   "ctr": ctr}
        need = []
        have = 0
        total = 0
        for i in range(len(files)):
            path, size, sha = files[i]
            if self._hash(path, size) == sha:
                have += 1
                need.append(False)
            elif self._hash(path + _TMP, size) == sha:
                need.append(False)  # verified earlier, survived a restart
            else:
                need.append(True)
                total += size
        self._need = need
        free = self.fs.free() if hasattr(self.fs, "free") else None
        if free is not None and total + _SPACE_MARGIN > free:
            self._drop_session()
            self.stats["rejected"] += 1
            return [{"state": "error", "id": m["id"], "reason": "no space: need %d bytes, %d free" % (total + _SPACE_MARGIN, free)}]
        out = []
        for i in range(len(files)):  # empty files need no chunk
            if need[i] and files[i][1] == 0:
                self._begin(i)
                out.extend(self._finish(i))
        rep = self._r("need", need=self._needed(), have=have, remove=len(gone), current=have == len(files) and not gone)
        out.insert(0, rep)
        if not rep["need"] and not rep["current"] and out[-1]["state"] != "ready":
            out.append(self._r("ready"))
        return out

    def _check_manifest(self, m):
        if not isinstance(m, dict):
            return None, "manifest must be an object"
        mid = m.get("id")
        if not isinstance(mid, str) or not mid or len(mid) > 40:
            return None, "id must be a string of 1..40 characters"
        sid = m.get("sid")
        if not isinstance(sid, int) or isinstance(sid, bool) or not 0 <= sid <= 65535:
            return None, "sid must be an integer 0..65535"
        v = m.get("version", "")
        if not isinstance(v, str) or len(v) > 32:
            return None, "version must be a string of at most 32 characters"
        fl = m.get("files")
        if not isinstance(fl, list) or not fl or len(fl) > _MAX_FILES:
            return None, "files must be a list of 1..%d entries" % _MAX_FILES
        files = []
        seen = {}
        for i in range(len(fl)):
            e = fl[i]
            if not isinstance(e, dict):
                return None, "files[%d] must be an object" % i
            p = e.get("path")
            why = _path_problem(p)
            if why:
                return None, "files[%d].path: %s" % (i, why)
            if p in seen:
                return None, "files[%d].path: duplicate %s" % (i, p)
            seen[p] = 1
            n = e.get("size")
            if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= _MAX_FILE_SIZE:
                return None, "files[%d].size must be an integer 0..%d" % (i, _MAX_FILE_SIZE)
            sha = e.get("sha256")
            why = _sha_problem(sha)
            if why:
                return None, "files[%d].%s" % (i, why)
            files.append([p, n, sha])
        rm = m.get("remove", [])
        if not isinstance(rm, list) or len(rm) > _MAX_FILES:
            return None, "remove must be a list of at most %d paths" % _MAX_FILES
        for i in range(len(rm)):
            why = _path_problem(rm[i])
            if why:
                return None, "remove[%d]: %s" % (i, why)
            if rm[i] in seen:
                return None, "remove[%d]: %s is also in files" % (i, rm[i])
        return files, None

    def _chunk(self, payload):
        n = len(payload)
        if n < _HDR + 1 or n > _HDR + _MAX_CHUNK:
            self.stats["bad"] += 1
            return []
        fmt, sid, idx, off = struct.unpack_from("<BHHI", payload, 0)
        m = self._m
        if fmt != _FMT or m is None or sid != m["sid"]:
            self.stats["stale"] += 1
            if fmt == _FMT and (m is None or sid != m["sid"]) and sid != self._nosess:
                self._nosess = sid  # answer once per unknown session
                return [{"state": "no_session", "sid": sid}]
            return []
        files = m["files"]
        if idx >= len(files):
            self.stats["bad"] += 1
            return []
        if not self._need[idx]:
            self.stats["dup"] += 1
            return []
        if idx != self._cur:
            if off != 0:
                return self._resend(idx, 0)
            self._drop_file()
            self._begin(idx)
        if off < self._off:
            self.stats["dup"] += 1
            return []
        if off > self._off:
            return self._resend(idx, self._off)
        path, size = files[idx][0], files[idx][1]
        data = memoryview(payload)[_HDR:]
        if off + len(data) > size:
            self.stats["bad"] += 1
            self._drop_file()
            return [self._r("file_bad", file=idx, path=path, reason="data beyond the declared size")]
        self._f.write(data)
        self._h.update(data)
        self._off += len(data)
        self._asked = -1
        self.stats["chunks"] += 1
        if self._off == size:
            return self._finish(idx)
        self._n += 1
        if self._n >= _ACK_EVERY:
            self._n = 0
            return [self._r("recv", file=idx, offset=self._off)]
        return []

    def _resend(self, idx, off):
        if self._asked == off and self._cur == idx:
            self.stats["dup"] += 1
            return []
        self._asked = off
        if idx != self._cur:
            self._cur = -1
        return [self._r("resend", file=idx, offset=off)]

    def _begin(self, idx):
        path = self._m["files"][idx][0]
        self._mkdirs(path)
        self._f = self.fs.open(path + _TMP, "wb")
        self._h = hashlib.sha256()
        self._cur = idx
        self._off = 0
        self._n = 0
        self._asked = -1

    def _finish(self, idx):
        path, size, sha = self._m["files"][idx]
        self._f.close()
        self._f = None
        got = binascii.hexlify(self._h.digest()).decode()
        self._h = None
        self._cur = -1
        if got != sha or self.fs.size(path + _TMP) != size:
            self.stats["bad"] += 1
            self._rm(path + _TMP)
            return [self._r("file_bad", file=idx, path=path, reason="sha256 mismatch")]
        self._need[idx] = False
        out = [self._r("file_ok", file=idx, path=path)]
        if not self._needed():
            out.append(self._r("ready"))
        return out

    def _commit(self, payload):
        m = self._m
        mid = self._msg_id(payload)
        msg = self._msg(payload)
        why = self._proof("commit", msg)
        if not why and m is not None and not self.unsigned and msg.get("ctr") != m.get("ctr"):
            why = "commit does not carry the manifest's counter"
        if why:
            self.stats["rejected"] += 1
            return [{"state": "error", "id": mid, "reason": why}]
        if m is None or mid != m["id"]:
            self.stats["rejected"] += 1
            return [{"state": "error", "id": mid, "reason": "no such update in progress"}]
        if self._needed():
            return [self._r("error", reason="not ready: files missing", need=self._needed())]
        # Only files that differ are swapped; unchanged ones stay as they are.
        files = []
        for path, size, sha in m["files"]:
            if self.fs.size(path + _TMP) is not None:
                files.append([path, self.fs.size(path) is not None])
                self._rm(path + _BAK)  # stale backup of an earlier update
        for path in m["gone"]:
            self._rm(path + _BAK)
        st = {"state": "swap", "id": m["id"], "version": m["version"], "files": files, "gone": m["gone"], "boots": 0}
        self._save(st)
        self._swap(st)
        st["state"] = "pending"
        self._save(st)
        self._m = None
        self._need = None
        self._pending = st
        self._since = self.now_ms()
        return [self._r("committed", st, files=len(files), removed=len(m["gone"]), reboot=True)]

    def _abort(self, payload):
        m = self._m
        mid = self._msg_id(payload)
        msg = self._msg(payload)
        why = self._proof("abort", msg)
        if not why and m is not None and not self.unsigned and msg.get("ctr") != m.get("ctr"):
            why = "abort does not carry the manifest's counter"
        if why:
            self.stats["rejected"] += 1
            return [{"state": "error", "id": mid, "reason": why}]
        if m is None or (mid is not None and mid != m["id"]):
            return [{"state": "aborted", "id": mid, "reason": "nothing to abort"}]
        self._drop_session()
        return [{"state": "aborted", "id": m["id"]}]

    # ---- helpers --------------------------------------------------------
    def _needed(self):
        if self._need is None:
            return []
        return [i for i in range(len(self._need)) if self._need[i]]

    def _msg(self, payload):
        try:
            d = json.loads(payload)
        except (ValueError, UnicodeError):
            return {}
        return d if isinstance(d, dict) else {}

    def _msg_id(self, payload):
        return self._msg(payload).get("id")

    def _proof(self, kind, m):
        """None if message m of `kind` is signed for this gateway by its key,
        else the reason it is refused (counted)."""
        if self.unsigned:
            return None
        if self.key is None:
            self.stats["unsigned"] += 1
            return "OTA is off on this gateway: no ota.key in its config"
        if m.get("gw") is None or m.get("sig") is None:
            self.stats["unsigned"] += 1
            return "unsigned: signed updates only (vegw ota --fleet-key)"
        if m.get("gw") != self.gateway:
            self.stats["foreign"] += 1
            return "signed for gateway %r, not this one" % (str(m.get("gw"))[:40],)
        sig = m.get("sig")
        if not isinstance(sig, str) or len(sig) != 64:
            self.stats["bad_sig"] += 1
            return "bad or missing signature"
        want = binascii.hexlify(hmac_sha256(self.key, signed_text(kind, m))).decode()
        if not _same(sig, want):
            self.stats["bad_sig"] += 1
            return "bad or missing signature"
        return None

    def _hash(self, path, size):
        if self.fs.size(path) != size:
            return None
        return osfs.sha256_hex(self.fs, path, self._buf)

    def _mkdirs(self, path):
        parts = path.split("/")[:-1]
        d = ""
        for p in parts:
            d = d + "/" + p if d else p
            if self.fs.size(d) is None:
                try:
                    self.fs.mkdir(d)
                except OSError:
                    pass  # exists (size() of a directory may be None on some fs)

    def _drop_file(self):
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None
            self._rm(self._m["files"][self._cur][0] + _TMP)
        self._h = None
        self._cur = -1
        self._off = 0

    def _drop_session(self, keep=()):
        # keep: files of a new manifest; their verified temps are reused
        self._drop_file()
        if self._m is not None:
            for path, size, sha in self._m["files"]:
                if [path, size, sha] not in keep:
                    self._rm(path + _TMP)
        self._m = None
        self._need = None

