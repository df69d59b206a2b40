# OTA receiver and journal (firmware/lib/ota_rx.py, ota_journal.py) on an in-memory filesystem, under both
# runtimes: happy path, corrupted chunk, power cuts at every journal step,
# rollback on missing health report, and hostile input.
import json
import struct
import hashlib
import binascii

from _util import Rng
import ota_rx as ota

MP_HEAPSIZE = "1M"  # the in-memory filesystem holds whole files (test data; test_ram measures ota itself)


class PowerCut(Exception):
    """Raised by MemFs when its operation budget runs out (a power cut)."""


class _File:
    def __init__(self, fs, path, mode):
        self.fs = fs
        self.path = path
        self.pos = 0
        if "w" in mode:
            fs.files[path] = bytearray()
        elif path not in fs.files:
            raise OSError(2)

    def write(self, data):
        self.fs._op()
        self.fs.files[self.path].extend(bytes(data))
        return len(data)

    def read(self, n=-1):
        d = self.fs.files[self.path]
        end = len(d) if n < 0 else min(len(d), self.pos + n)
        out = bytes(d[self.pos:end])
        self.pos = end
        return out

    def readinto(self, buf):
        d = self.read(len(buf))
        buf[: len(d)] = d
        return len(d)

    def close(self):
        pass


class MemFs:
    def __init__(self, files=None, budget=-1, free=None):
        self.files = {}
        self.dirs = {}
        for k in files or {}:
            self.files[k] = bytearray(files[k])
        self.budget = budget  # mutating operations left before a power cut (-1: none)
        self.free_bytes = free

    def _op(self):
        if self.budget == 0:
            raise PowerCut()
        if self.budget > 0:
            self.budget -= 1

    def open(self, path, mode):
        if "w" in mode:
            self._op()
        return _File(self, path, mode)

    def size(self, path):
        d = self.files.get(path)
        return None if d is None else len(d)

    def remove(self, path):
        self._op()
        if path not in self.files:
            raise OSError(2)
        del self.files[path]

    def rename(self, old, new):
        self._op()
        if old not in self.files:
            raise OSError(2)
        self.files[new] = self.files.pop(old)

    def mkdir(self, path):
        self._op()
        if path in self.dirs:
            raise OSError(17)
        self.dirs[path] = 1

    def free(self):
        return self.free_bytes

    def snapshot(self):
        out = {}
        for k in self.files:
            out[k] = bytes(self.files[k])
        return out


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


OLD = {"main.py": b"print('old main')\n", "lib/app.mpy": b"M\x06old app" * 50, "lib/keep.mpy": b"same" * 10, "config.json": b"{}",
       "lib/gone.py": b"X = 'stale source that would shadow gone.mpy'\n"}
NEW = {"main.py": b"print('new main')\n", "lib/app.mpy": b"M\x06NEW app!" * 300, "lib/keep.mpy": b"same" * 10, "drivers/uart.mpy": b"\x00\x01" * 700}


def sha(b):
    return binascii.hexlify(hashlib.sha256(b).digest()).decode()


def manifest(files, mid="u1", sid=7, version="1.1", remove=None):
    order = sorted(files)
    m = {"id": mid, "sid": sid, "version": version, "files": [{"path": p, "size": len(files[p]), "sha256": sha(files[p])} for p in order]}
    if remove is not None:
        m["remove"] = remove
    return json.dumps(m).encode(), order


def chunks(sid, idx, data, size=1024):
    out = []
    off = 0
    while off < len(data):
        out.append(struct.pack("<BHHI", 1, sid, idx, off) + data[off:off + size])
        off += size
    return out


def states(replies):
    return [r["state"] for r in replies]


def send_all(rx, files, order, sid=7, skip=()):
    replies = []
    for i in range(len(order)):
        if order[i] in skip:
            continue
        for c in chunks(sid, i, files[order[i]]):
            replies.extend(rx.handle("chunk", c))
    return replies


def only_files(fs):
    snap = fs.snapshot()
    out = {}
    for k in snap:
        if not k.startswith("ota_"):
            out[k] = snap[k]
    return out


def update_to_commit(fs, clock):
    rx = ota.OtaReceiver(fs, clock, health_timeout_ms=60000, unsigned=True)
    payload, order = manifest(NEW, remove=["lib/gone.py", "lib/never_there.py"])
    r = rx.handle("manifest", payload)
    assert r[0]["state"] == "need" and r[0]["remove"] == 1
    assert r[0]["need"] == [order.index("drivers/uart.mpy"), order.index("lib/app.mpy"), order.index("main.py")]
    assert r[0]["have"] == 1 and r[0]["current"] is False
    reps = send_all(rx, NEW, order)
    assert states(reps).count("file_ok") == 3
    assert reps[-1]["state"] == "ready"
    assert "recv" not in states(reps) or all(x["offset"] % 1024 == 0 for x in reps if x["state"] == "recv")
    r = rx.handle("commit", b'{"id": "u1"}')
    assert r[0]["state"] == "committed" and r[0]["reboot"] is True and r[0]["files"] == 3 and r[0]["removed"] == 1
    return rx


def test_happy_path():
    fs = MemFs(OLD)
    clock = Clock()
    update_to_commit(fs, clock)
    # after the swap: new files in place, old ones kept as .bak
    assert bytes(fs.files["lib/app.mpy"]) == NEW["lib/app.mpy"]
    assert bytes(fs.files["lib/app.mpy.bak"]) == OLD["lib/app.mpy"]
    assert "drivers/uart.mpy.bak" not in fs.files
    assert "lib/keep.mpy.bak" not in fs.files  # unchanged file untouched
    assert "lib/gone.py" not in fs.files and "lib/gone.py.bak" in fs.files
    # reboot: a new receiver finds the pending update
    rx = ota.OtaReceiver(fs, clock, health_timeout_ms=60000, unsigned=True)
    r = rx.boot_check()
    assert states(r) == ["pending"] and r[0]["boot"] == 1 and r[0]["id"] == "u1"
    clock.t += 30000
    assert rx.tick() == []
    r = rx.mark_healthy()
    assert states(r) == ["healthy"] and r[0]["version"] == "1.1"
    files = only_files(fs)
    expect = dict(NEW)
    expect["config.json"] = OLD["config.json"]  # not part of the update
    assert files == expect  # lib/gone.py removed for good
    assert "ota_state.json" not in fs.files
    assert rx.status()["version"] == "1.1"
    clock.t += 600000
    assert rx.tick() == []
    # the same update again: nothing to do
    r = rx.handle("manifest", manifest(NEW, mid="u2", remove=["lib/gone.py"])[0])
    assert r[0]["current"] is True and r[0]["need"] == [] and states(r) == ["need"]
    # only a removal left to do: nothing to send, but a commit is needed
    fs.files["lib/gone.py"] = bytearray(b"back again")
    r = rx.handle("manifest", manifest(NEW, mid="u3", remove=["lib/gone.py"])[0])
    assert r[0]["current"] is False and r[0]["need"] == [] and states(r) == ["need", "ready"]
    assert rx.handle("commit", b'{"id": "u3"}')[0]["removed"] == 1
    assert "lib/gone.py" not in fs.files


def test_progress_replies_bounded():
    fs = MemFs(OLD)
    rx = ota.OtaReceiver(fs, Clock(), unsigned=True)
    big = {"lib/big.mpy": Rng(3).bytes(20 * 1024 + 5)}
    payload, order = manifest(big)
    rx.handle("manifest", payload)
    reps = send_all(rx, big, order)
    recv = [r for r in reps if r["state"] == "recv"]
    assert [r["offset"] for r in recv] == [8192, 16384]  # one per _ACK_EVERY chunks
    assert states(reps)[-2:] == ["file_ok", "ready"]


def test_corrupted_chunk_keeps_old_file():
    fs = MemFs(OLD)
    clock = Clock()
    rx = ota.OtaReceiver(fs, clock, unsigned=True)
    payload, order = manifest(NEW)
    rx.handle("manifest", payload)
    i = order.index("lib/app.mpy")
    cs = chunks(7, i, NEW["lib/app.mpy"])
    bad = bytearray(cs[1])
    bad[20] ^= 0x55  # one flipped bit pattern inside the data
    reps = []
    for c in [cs[0], bytes(bad)] + cs[2:]:
        reps.extend(rx.handle("chunk", c))
    assert reps[-1]["state"] == "file_bad" and reps[-1]["path"] == "lib/app.mpy"
    assert "lib/app.mpy.new" not in fs.files
    assert bytes(fs.files["lib/app.mpy"]) == OLD["lib/app.mpy"]
    r = rx.handle("commit", b'{"id": "u1"}')
    assert r[0]["state"] == "error" and i in r[0]["need"]
    assert bytes(fs.files["lib/app.mpy"]) == OLD["lib/app.mpy"]
    # the host resends the file: accepted this time
    reps = send_all(rx, NEW, order)
    assert "file_ok" in states(reps) and reps[-1]["state"] == "ready"
    assert rx.handle("commit", b'{"id": "u1"}')[0]["state"] == "committed"
    assert rx.stats["bad"] == 1


def test_out_of_order_and_duplicates():
    fs = MemFs(OLD)
    rx = ota.OtaReceiver(fs, Clock(), unsigned=True)
    payload, order = manifest(NEW)
    rx.handle("manifest", payload)
    i = order.index("lib/app.mpy")
    cs = chunks(7, i, NEW["lib/app.mpy"])
    assert rx.handle("chunk", cs[0]) == []
    assert rx.handle("chunk", cs[0]) == []  # QoS 1 duplicate
    r = rx.handle("chunk", cs[2])  # chunk 1 lost
    assert r == [{"state": "resend", "id": "u1", "version": "1.1", "file": i, "offset": 1024}]
    assert rx.handle("chunk", cs[2]) == []  # asked once per gap
    reps = []
    for c in cs[1:]:
        reps.extend(rx.handle("chunk", c))
    assert reps[-1]["state"] == "file_ok"
    assert rx.stats["dup"] >= 2
    # a chunk for a file not started at offset 0 asks for the start
    j = order.index("main.py")
    r = rx.handle("chunk", chunks(7, j, NEW["main.py"], size=4)[1])
    assert r[0]["state"] == "resend" and r[0]["file"] == j and r[0]["offset"] == 0


def test_power_cut_during_reception_then_resume():
    fs = MemFs(OLD)
    clock = Clock()
    rx = ota.OtaReceiver(fs, clock, unsigned=True)
    payload, order = manifest(NEW)
    rx.handle("manifest", payload)
    # drivers/uart.mpy complete, lib/app.mpy half way, then the power goes
    send_all(rx, NEW, order, skip=("lib/app.mpy", "main.py"))
    i = order.index("lib/app.mpy")
    for c in chunks(7, i, NEW["lib/app.mpy"])[:2]:
        rx.handle("chunk", c)
    # power cut: nothing committed, every original file intact
    rx = ota.OtaReceiver(fs, clock, unsigned=True)
    assert rx.boot_check() == []
    for p in OLD:
        assert bytes(fs.files[p]) == OLD[p]
    # chunks of the lost session are answered once with no_session
    r = rx.handle("chunk", chunks(7, i, NEW["lib/app.mpy"])[2])
    assert states(r) == ["no_session"]
    assert rx.handle("chunk", chunks(7, i, NEW["lib/app.mpy"])[1]) == []
    # the host resends the manifest: the verified temp file is reused
    r = rx.handle("manifest", payload)
    assert r[0]["need"] == [order.index("lib/app.mpy"), order.index("main.py")]
    reps = send_all(rx, NEW, order, skip=("drivers/uart.mpy",))
    assert reps[-1]["state"] == "ready"
    assert rx.handle("commit", b'{"id":"u1"}')[0]["state"] == "committed"
    assert bytes(fs.files["drivers/uart.mpy"]) == NEW["drivers/uart.mpy"]


def _consistent(fs):
    files = only_files(fs)
    new = dict(NEW)
    new["config.json"] = OLD["config.json"]
    plain = {}
    for k in files:
        if not (k.endswith(".bak") or k.endswith(".new")):
            plain[k] = files[k]
    return plain == OLD or plain == new, plain == new


def test_power_cut_at_every_step_of_commit_and_rollback():
    # Count the mutating fs operations of commit, then cut the power after
    # each of them in turn; the next boot must leave all-old or all-new.
    outcomes = {}
    k = 0
    while True:
        fs = MemFs(OLD)
        clock = Clock()
        rx = ota.OtaReceiver(fs, clock, unsigned=True)
        payload, order = manifest(NEW, remove=["lib/gone.py"])
        rx.handle("manifest", payload)
        send_all(rx, NEW, order)
        fs.budget = k
        try:
            rx.handle("commit", b'{"id": "u1"}')
            cut = False
        except PowerCut:
            cut = True
        fs.budget = -1
        rx = ota.OtaReceiver(fs, clock, max_boots=2, unsigned=True)
        rx.boot_check()
        ok, is_new = _consistent(fs)
        assert ok, "inconsistent after a cut at step %d: %r" % (k, sorted(only_files(fs)))
        outcomes[is_new] = outcomes.get(is_new, 0) + 1
        if rx.pending():
            # now cut the power at each step of a rollback
            fs.budget = 0 if k % 2 else 1 + k // 3
            try:
                clock.t += 10 ** 6
                rx.tick()
            except PowerCut:
                pass
            fs.budget = -1
            rx = ota.OtaReceiver(fs, clock, unsigned=True)
            r = rx.boot_check()
            assert not rx.pending() or states(r) == ["pending"]
            ok, is_new = _consistent(fs)
            assert ok
        if not cut:
            break
        k += 1
    assert k > 5  # the commit really has that many steps to interrupt
    assert outcomes.get(False) and outcomes.get(True)


def test_rollback_when_health_not_reported():
    fs = MemFs(OLD)
    clock = Clock()
    update_to_commit(fs, clock)
    rx = ota.OtaReceiver(fs, clock, health_timeout_ms=60000, unsigned=True)
    assert states(rx.boot_check()) == ["pending"]
    clock.t += 59999
    assert rx.tick() == []
    clock.t += 1
    r = rx.tick()
    assert states(r) == ["rolled_back"] and r[0]["reboot"] is True
    assert "within 60 s" in r[0]["reason"]
    assert only_files(fs) == OLD  # drivers/uart.mpy (new) removed, .bak restored, gone.py back
    assert not rx.pending()
    assert rx.mark_healthy() == []
    assert ota.OtaReceiver(fs, clock, unsigned=True).boot_check() == []


def test_boot_journal_is_adopted_by_the_receiver():
    # startup.py checks the journal with a plain OtaJournal (the receiver is
    # not loaded at boot); the receiver the app makes when a message comes
    # takes its update on trial over: pending, health, timeout
    import ota_journal

    fs = MemFs(OLD)
    clock = Clock()
    update_to_commit(fs, clock)
    j = ota_journal.OtaJournal(fs, clock, health_timeout_ms=60000)
    assert states(j.boot_check()) == ["pending"] and j.pending()
    assert j.status()["state"] == "pending"
    rx = ota.OtaReceiver(fs, clock, health_timeout_ms=60000, unsigned=True, journal=j)
    assert rx.pending() and states(rx.handle("query", b"")) == ["pending"]
    assert states(rx.mark_healthy()) == ["healthy"]
    assert not rx.pending() and rx.status()["state"] == "idle" and rx.status()["max_chunk"] == 1024
    # without the boot's journal a fresh receiver has nothing on trial
    fs = MemFs(OLD)
    update_to_commit(fs, clock)
    j = ota_journal.OtaJournal(fs, clock, health_timeout_ms=60000)
    j.boot_check()
    assert ota.OtaReceiver(fs, clock, unsigned=True).mark_healthy() == []
    clock.t += 60000
    assert states(ota.OtaReceiver(fs, clock, health_timeout_ms=60000, unsigned=True, journal=j).tick()) == [
        "rolled_back"]
    assert only_files(fs) == OLD


def test_rollback_after_boot_loop():
    fs = MemFs(OLD)
    clock = Clock()
    update_to_commit(fs, clock)
    for boot in (1, 2):
        r = ota.OtaReceiver(fs, clock, max_boots=2, unsigned=True).boot_check()
        assert states(r) == ["pending"] and r[0]["boot"] == boot
    r = ota.OtaReceiver(fs, clock, max_boots=2, unsigned=True).boot_check()
    assert states(r) == ["rolled_back"] and "2 boots" in r[0]["reason"]
    assert only_files(fs) == OLD


def test_the_run_that_committed_cannot_report_healthy():
    # a fault run: the old app, connected long enough, marked the update it
    # had just committed healthy before its reset; the boot into the new code
    # then had no journal, no trial and no rollback
    fs = MemFs(OLD)
    clock = Clock()
    rx = update_to_commit(fs, clock)
    assert rx.pending()
    clock.t += 30000
    assert rx.mark_healthy() == []
    assert rx.pending() and "ota_state.json" in fs.files
    assert bytes(fs.files["lib/app.mpy.bak"]) == OLD["lib/app.mpy"]
    rx = ota.OtaReceiver(fs, clock, unsigned=True)
    assert states(rx.boot_check()) == ["pending"]
    assert states(rx.mark_healthy()) == ["healthy"]


def test_busy_while_pending_and_abort():
    fs = MemFs(OLD)
    clock = Clock()
    update_to_commit(fs, clock)
    rx = ota.OtaReceiver(fs, clock, unsigned=True)
    rx.boot_check()
    r = rx.handle("manifest", manifest(NEW, mid="u2")[0])
    assert r[0]["state"] == "error" and "busy" in r[0]["reason"]
    assert rx.status()["state"] == "pending"
    rx.mark_healthy()
    # a new session, aborted half way: temp files removed, nothing changed
    upd = {"lib/app.mpy": b"third" * 600}
    payload, order = manifest(upd, mid="u3", sid=9)
    rx.handle("manifest", payload)
    rx.handle("chunk", chunks(9, 0, upd["lib/app.mpy"])[0])
    assert "lib/app.mpy.new" in fs.files
    assert states(rx.handle("abort", b'{"id":"u3"}')) == ["aborted"]
    assert "lib/app.mpy.new" not in fs.files
    assert bytes(fs.files["lib/app.mpy"]) == NEW["lib/app.mpy"]
    assert rx.handle("commit", b'{"id":"u3"}')[0]["state"] == "error"


def test_no_space():
    fs = MemFs(OLD, free=10000)
    rx = ota.OtaReceiver(fs, Clock(), unsigned=True)
    r = rx.handle("manifest", manifest(NEW)[0])
    assert r[0]["state"] == "error" and r[0]["reason"].startswith("no space")
    assert rx.status()["state"] == "idle"


def test_empty_file_needs_no_chunk():
    fs = MemFs(OLD)
    rx = ota.OtaReceiver(fs, Clock(), unsigned=True)
    upd = {"lib/__init__.py": b""}
    r = rx.handle("manifest", manifest(upd)[0])
    assert states(r) == ["need", "file_ok", "ready"]
    assert rx.handle("commit", b'{"id":"u1"}')[0]["state"] == "committed"
    assert bytes(fs.files["lib/__init__.py"]) == b""


def test_hostile_input_never_raises():
    fs = MemFs(OLD)
    rx = ota.OtaReceiver(fs, Clock(), unsigned=True)
    bad_manifests = [
        b"", b"not json", b"[]", b"{}", b'{"id": "x", "sid": 1}',
        b'{"id": "x", "sid": 70000, "files": []}',
        b"{" + b" " * 5000 + b"}",
    ]
    good = {"path": "lib/a.mpy", "size": 3, "sha256": "0" * 64}
    for path in ("../etc/passwd", "/main.py", "lib//a.py", "a.py.bak", "ota_state.json", "x" * 65, "lib/ä.py", 5):
        e = dict(good)
        e["path"] = path
        bad_manifests.append(json.dumps({"id": "x", "sid": 1, "files": [e]}).encode())
    bad_manifests.append(json.dumps({"id": "x", "sid": 1, "files": [good], "remove": ["../x"]}).encode())
    bad_manifests.append(json.dumps({"id": "x", "sid": 1, "files": [good], "remove": ["lib/a.mpy"]}).encode())
    bad_manifests.append(json.dumps({"id": "x", "sid": 1, "files": [good], "remove": "lib/b.py"}).encode())
    for field, val in (("size", -1), ("size", 10 ** 7), ("size", True), ("sha256", "AB" * 32), ("sha256", "0" * 63)):
        e = dict(good)
        e[field] = val
        bad_manifests.append(json.dumps({"id": "x", "sid": 1, "files": [e]}).encode())
    bad_manifests.append(json.dumps({"id": "x", "sid": 1, "files": [good, good]}).encode())
    for p in bad_manifests:
        r = rx.handle("manifest", p)
        assert len(r) == 1 and r[0]["state"] == "error", p
    assert rx.stats["rejected"] == len(bad_manifests)
    rng = Rng(5)
    for n in range(200):
        rx.handle("chunk", rng.bytes(rng.below(40)))
    for suffix in ("commit", "abort", "query", "bogus", "status"):
        for p in (b"", b"\xff\xfe", b"{}", b"[1]"):
            r = rx.handle(suffix, p)
            assert isinstance(r, list)
    assert rx.handle("chunk", b"\x01" + b"\x00" * 8 + b"x" * 1025) == []  # longer than _MAX_CHUNK
    # mutated copies of a valid manifest: any reply, never an exception
    good_m = manifest({"lib/a.mpy": b"abc", "main.py": b"x"}, remove=["lib/a.py"])[0]
    for n in range(300):
        b = bytearray(good_m)
        for k in range(1 + rng.below(3)):
            b[rng.below(len(b))] = rng.below(256)
        assert isinstance(rx.handle("manifest", bytes(b)), list)
        rx.handle("abort", b"{}")
    for p in ("lib/a.mpy.new", "main.py.new"):
        if p in fs.files:
            del fs.files[p]
    assert only_files(fs) == OLD
    # the same receiver still works afterwards
    payload, order = manifest(NEW)
    assert rx.handle("manifest", payload)[0]["state"] == "need"
    assert send_all(rx, NEW, order)[-1]["state"] == "ready"


def test_data_beyond_declared_size():
    fs = MemFs(OLD)
    rx = ota.OtaReceiver(fs, Clock(), unsigned=True)
    payload, order = manifest({"main.py": b"12345"})
    rx.handle("manifest", payload)
    r = rx.handle("chunk", struct.pack("<BHHI", 1, 7, 0, 0) + b"123456")
    assert states(r) == ["file_bad"]
    assert bytes(fs.files["main.py"]) == OLD["main.py"]
    assert "main.py.new" not in fs.files


def test_osfs_on_real_files():
    import os

    import sys
    import time

    # a folder of this run's own: a seeded name collided with one an
    # interrupted earlier run left behind
    root = "/tmp/vegw_ota_osfs_%s_%d_%d" % (sys.implementation.name, int(time.time()), Rng(int(time.time()) & 0xFFFF).below(1 << 30))
    os.mkdir(root)
    try:
        fs = ota.OsFs(root)
        clock = Clock()
        rx = ota.OtaReceiver(fs, clock, unsigned=True)
        upd = {"lib/x.mpy": b"hello" * 400}
        payload, order = manifest(upd)
        r = rx.handle("manifest", payload)
        assert r[0]["need"] == [0]
        assert send_all(rx, upd, order)[-1]["state"] == "ready"
        assert rx.handle("commit", b'{"id":"u1"}')[0]["state"] == "committed"
        rx = ota.OtaReceiver(fs, clock, unsigned=True)
        assert states(rx.boot_check()) == ["pending"]
        assert states(rx.mark_healthy()) == ["healthy"]
        with open(root + "/lib/x.mpy", "rb") as f:
            assert f.read() == upd["lib/x.mpy"]
        assert sorted(os.listdir(root + "/lib")) == ["x.mpy"]
        assert fs.free() is None or fs.free() > 0
    finally:
        for d in (root + "/lib", root):
            for n in os.listdir(d):
                try:
                    os.remove(d + "/" + n)
                except OSError:
                    pass
        os.rmdir(root + "/lib")
        os.rmdir(root)


def test_hmac_sha256_rfc4231():
    # RFC 4231 test cases 2 and 6 (a key longer than the block size)
    mac = ota.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert binascii.hexlify(mac) == b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    mac = ota.hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert binascii.hexlify(mac) == b"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def _sign(key, kind, m):
    m["sig"] = binascii.hexlify(ota.hmac_sha256(key, ota.signed_text(kind, m))).decode()
    return json.dumps(m).encode()


def test_signed_updates():
    fleet = b"f" * 32
    key = ota.derive_key(fleet, "gw1")
    other = ota.derive_key(fleet, "gw2")
    assert key != other and len(key) == 32
    fs = MemFs(OLD)
    rx = ota.OtaReceiver(fs, Clock(), key=key, gateway="gw1")
    upd = {"lib/app.mpy": b"signed" * 100}
    payload, order = manifest(upd, remove=["lib/gone.py"])
    m = json.loads(payload)
    m["gw"] = "gw1"
    m["ctr"] = 1000
    before = dict((p_, bytes(v)) for p_, v in fs.files.items())

    def refused(msg, why):
        r = rx.handle("manifest", msg)[0]
        assert r["state"] == "error" and why in r["reason"], (why, r)

    # issue 22: unsigned, signed for another gateway (its own key, or ours
    # with its name), a truncated signature, altered after signing: refused
    refused(payload, "unsigned")
    refused(json.dumps(dict(m)).encode(), "unsigned")
    m2 = dict(m)
    m2["gw"] = "gw2"
    refused(_sign(other, "manifest", m2), "signed for gateway 'gw2'")
    refused(_sign(key, "manifest", dict(m2)), "signed for gateway 'gw2'")
    refused(_sign(other, "manifest", dict(m)), "bad or missing signature")
    cut = json.loads(_sign(key, "manifest", dict(m)))
    cut["sig"] = cut["sig"][:40]
    refused(json.dumps(cut).encode(), "bad or missing signature")
    forged = json.loads(_sign(key, "manifest", dict(m)))
    forged["files"][0]["sha256"] = sha(b"evil")
    refused(json.dumps(forged).encode(), "bad or missing signature")
    forged = json.loads(_sign(key, "manifest", dict(m)))
    forged["remove"] = ["main.py"]
    refused(json.dumps(forged).encode(), "bad or missing signature")
    assert rx.stats["rejected"] == 8 and rx.stats["unsigned"] == 2
    assert rx.stats["foreign"] == 2 and rx.stats["bad_sig"] == 4
    assert dict((p_, bytes(v)) for p_, v in fs.files.items()) == before  # nothing changed
    # properly signed: accepted; the commit must be signed too, with its counter
    assert rx.handle("manifest", _sign(key, "manifest", dict(m)))[0]["state"] == "need"
    assert send_all(rx, upd, order)[-1]["state"] == "ready"
    assert rx.handle("commit", b'{"id": "u1"}')[0]["state"] == "error"
    assert rx.handle("abort", b'{"id": "u1", "gw": "gw1", "ctr": 1000}')[0]["state"] == "error"
    assert rx.handle("commit", _sign(key, "commit", {"id": "u1", "gw": "gw1", "ctr": 999}))[0]["state"] == "error"
    assert rx.handle("commit", _sign(key, "commit", {"id": "u1", "gw": "gw1", "ctr": 1000}))[0]["state"] == "committed"
    assert bytes(fs.files["lib/app.mpy"]) == upd["lib/app.mpy"]
    # the same signed update replayed later (or an older one: a downgrade)
    rx2 = ota.OtaReceiver(fs, Clock(), key=key, gateway="gw1")
    rx2.boot_check()
    rx2.mark_healthy()
    r = rx2.handle("manifest", _sign(key, "manifest", dict(m)))[0]
    assert r["state"] == "error" and "replayed or older" in r["reason"] and rx2.stats["replayed"] == 1
    m3 = dict(m)
    m3["ctr"] = 1001
    assert rx2.handle("manifest", _sign(key, "manifest", m3))[0]["state"] in ("need", "ready")


def test_no_key_refuses_every_update():
    fs = MemFs(OLD)
    rx = ota.OtaReceiver(fs, Clock(), gateway="gw1")
    payload, _ = manifest({"lib/app.mpy": b"x" * 10})
    r = rx.handle("manifest", payload)[0]
    assert r["state"] == "error" and "no ota.key" in r["reason"] and rx.stats["unsigned"] == 1
