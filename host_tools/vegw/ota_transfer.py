"""The transfer of one update to one gateway over MQTT (`vegw ota`): the
session on the broker, the signed manifest, the files the gateway lacks in
a window of 1 KB chunks (resent on request), the commit and the wait for
the health report. cmd_ota.py is the command around it: its options and
the staged rollout over many gateways. The gateway's side is
firmware/lib/ota_rx.py."""
# Length: one protocol's sender, its steps in order; each is a short function.
import hashlib
import json
import pathlib
import queue
import random
import struct
import sys
import time

from . import deploy_build as build_mod

CHUNK = 1024  # data bytes per chunk (ota_rx._MAX_CHUNK)
WINDOW = 16  # chunks in flight beyond the gateway's last ack
ANSWER_S = 20.0  # silence after which we resend from the last ack
RETRIES = 3  # resends of the same stretch, re-manifests after a gateway restart

EXIT_OK, EXIT_USAGE, EXIT_ROLLED_BACK, EXIT_TIMEOUT, EXIT_REFUSED = 0, 2, 3, 4, 5


class OtaFail(Exception):
    def __init__(self, code, msg):
        Exception.__init__(self, msg)
        self.code = code


def _err(code, msg):
    sys.stderr.write("vegw ota: %s\n" % msg)
    return code


_last_ctr = [0]


def _counter():
    """The signed counter: the clock in seconds, strictly increasing within
    this run (a gateway refuses a counter not above the last it accepted)."""
    c = max(int(time.time()), _last_ctr[0] + 1)
    _last_ctr[0] = c
    return c


def gateway_key(args, gateway):
    """The key that signs for `gateway`: --key as given, or derived from
    --fleet-key (proof.derive_key); None when neither is given."""
    if args.key_bytes is not None:
        return args.key_bytes
    if args.fleet_key_bytes is not None:
        import proof

        return proof.derive_key(args.fleet_key_bytes, gateway)
    return None


def _signed(key, kind, msg, gateway=None, ctr=None):
    """Name the gateway and the counter, and add "sig": HMAC-SHA256 over
    ota_rx.signed_text (CPython's hmac here, the firmware's own HMAC on the
    gateway: the tests cross-check the two)."""
    if gateway is not None:
        msg["gw"] = gateway
        msg["ctr"] = ctr if ctr is not None else _counter()
    if key is not None:
        import hmac
        import ota_rx

        msg["sig"] = hmac.new(key, ota_rx.signed_text(kind, msg), hashlib.sha256).hexdigest()
    return msg


def _broker(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OtaFail(EXIT_USAGE, "--broker must be HOST:PORT, got %r" % text)
    return host, int(port)


def select_files(args, mpy):
    """[(device path, bytes)] to offer, compiled to match the gateway's .mpy
    format when it reports one."""
    fw = pathlib.Path(args.firmware)
    if not fw.is_dir():
        raise OtaFail(EXIT_USAGE, "--firmware %s: not a directory" % fw)
    compile_ = mpy is not None and not args.no_compile
    major = minor = arch = None
    if compile_:
        from .deploy_link import mpy_info

        major, minor, arch = mpy_info(mpy)
    built = build_mod.build(fw, args.build_dir, mpy=major, arch=arch, compile_=compile_, minor=minor)
    by_src = {}
    for (dev_src, src), (dev, local) in zip(build_mod.sources(fw), built):
        by_src[dev_src.lstrip("/")] = (dev.lstrip("/"), local)
    if args.all:
        chosen = sorted(by_src)
    else:
        chosen = []
        for f in args.files:
            p = pathlib.Path(f)
            if p.is_file() and fw.resolve() in p.resolve().parents:
                rel = p.resolve().relative_to(fw.resolve()).as_posix()
            else:
                rel = f.lstrip("/")
            if rel not in by_src:
                raise OtaFail(EXIT_USAGE, "%s: not a firmware source under %s (expected e.g. lib/metrics.py or main.py)" % (f, fw))
            chosen.append(rel)
    return [(by_src[r][0], pathlib.Path(by_src[r][1]).read_bytes()) for r in chosen]


class Session:
    def __init__(self, args):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise OtaFail(EXIT_USAGE, "paho-mqtt is not installed (pip install paho-mqtt)")
        self.host, self.port = _broker(args.broker)
        self.base = "%s/%s/ota/" % (args.prefix, args.gateway)
        self.q = queue.Queue()
        self.deadline = time.monotonic() + args.timeout
        from . import mqtt_link

        self.prefix = args.prefix
        self.seen = set()  # gateway ids with a retained availability on this broker

        def on_connect(cl):
            cl.subscribe(self.base + "status", qos=1)
            cl.subscribe("%s/+/availability" % args.prefix, qos=0)

        try:
            c = mqtt_link.connect(args, "vegw-ota", on_connect=on_connect, on_message=self._on_message,
                                  setup=lambda cl: cl.max_inflight_messages_set(WINDOW + 4))
        except mqtt_link.LinkError as e:
            raise OtaFail(EXIT_USAGE, str(e))
        self.c = c
        time.sleep(0.3)  # the SUBACK and the retained availabilities

    def _on_message(self, client, userdata, msg):
        if msg.topic.endswith("/availability"):
            self.seen.add(msg.topic.split("/")[-2])
            return
        try:
            d = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(d, dict):
            self.q.put(d)

    def send(self, suffix, payload):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        self.c.publish(self.base + suffix, payload, qos=1)

    def get(self, timeout):
        t = min(timeout, self.deadline - time.monotonic())
        if t <= 0:
            return None
        try:
            return self.q.get(timeout=t)
        except queue.Empty:
            return None

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def _ask_state(s):
    for attempt in range(3):
        s.send("query", b"{}")
        end = time.monotonic() + 5
        while time.monotonic() < end:
            r = s.get(end - time.monotonic())
            if r is None:
                break
            if r.get("state") in ("idle", "pending", "receiving"):
                return r
    raise OtaFail(EXIT_TIMEOUT, "gateway %s did not answer on %squery (offline, or firmware without OTA?)" % (s.base.split("/")[-3], s.base))


def _update(args, s, Progress):
    st = _ask_state(s)
    if st["state"] == "pending":
        raise OtaFail(EXIT_REFUSED, "gateway is busy: update %s is waiting for its health report" % st.get("id"))
    files = select_files(args, st.get("mpy"))
    digest = hashlib.sha256(b"".join(p.encode() + hashlib.sha256(d).digest() for p, d in files)).hexdigest()
    version = args.fw_version or time.strftime("%Y%m%d-%H%M", time.gmtime()) + "-" + digest[:8]
    if len(version) > 32:
        raise OtaFail(EXIT_USAGE, "--version must be at most 32 characters")
    parts = _split(files)
    if len(parts) > 1:
        sys.stderr.write("vegw ota: %s: %d files are more than one manifest holds (%d bytes): %d updates in a row, "
                         "each checked healthy before the next\n" % (args.gateway, len(files), MANIFEST_MAX, len(parts)))
    rc = EXIT_OK
    for k, part in enumerate(parts):
        rc = _offer(args, s, Progress, part, version if len(parts) == 1 else "%s.%d" % (version[:29], k + 1))
        if rc != EXIT_OK:
            return rc
        if k + 1 < len(parts):
            _ask_state(s)  # the gateway is back and idle before the next part
    return rc


MANIFEST_MAX = 2048  # ota_rx._MAX_MANIFEST: the gateway refuses a longer one
_SIG_ROOM = 220  # "gw", "ctr" and "sig" added when signing, with margin


def _manifest(files, version, sid):
    offered = set(p for p, _ in files)
    remove = sorted(set(t.lstrip("/") for t in (build_mod.counterpart("/" + p) for p, _ in files) if t) - offered)
    return {"id": "%s.%04x" % (version[:35], sid), "sid": sid, "version": version, "remove": remove,
            "files": [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in files]}


def _split(files):
    """Groups of files whose manifests each fit MANIFEST_MAX (in order)."""
    parts = [[]]
    for f in files:
        trial = parts[-1] + [f]
        if parts[-1] and len(json.dumps(_manifest(trial, "v" * 32, 65535))) + _SIG_ROOM > MANIFEST_MAX:
            parts.append([f])
        else:
            parts[-1] = trial
    return parts


def _offer(args, s, Progress, files, version):
    """One signed manifest, its files, the commit and the health report."""
    sid = random.randrange(1, 65536)
    manifest = _manifest(files, version, sid)
    mid = manifest["id"]
    key = gateway_key(args, args.gateway)
    _signed(key, "manifest", manifest, args.gateway)
    if len(json.dumps(manifest)) > MANIFEST_MAX:
        raise OtaFail(EXIT_USAGE, "file %s alone needs a manifest over %d bytes" % (files[0][0], MANIFEST_MAX))
    sys.stderr.write("vegw ota: %s: offering %d files as version %s\n" % (args.gateway, len(files), version))

    need = _send_manifest(s, manifest)
    if need is None:  # every file current, no stale twin to remove
        sys.stdout.write("gateway %s already has these %d files; nothing to do\n" % (args.gateway, len(files)))
        return EXIT_OK
    total = sum(len(files[i][1]) for i in need)
    prog = Progress(total, len(need))
    restarts = 0
    while need:
        i = need[0]
        prog.file(files[i][0], len(files[i][1]))
        res = _send_file(s, sid, mid, i, files[i][1], prog)
        if res == "ok":
            need.pop(0)
        elif res == "restart":  # the gateway lost the session (rebooted): offer again
            restarts += 1
            if restarts > RETRIES:
                raise OtaFail(EXIT_TIMEOUT, "gateway keeps losing the update session; giving up")
            manifest.pop("sig", None)
            _signed(key, "manifest", manifest, args.gateway)  # a fresh counter: the old one is spent
            need = _send_manifest(s, manifest)
            if need is None:
                return _err(EXIT_OK, "gateway reports every file current after its restart")
    prog.end()
    s.send("commit", _signed(key, "commit", {"id": mid}, args.gateway, manifest["ctr"]))
    return _await_health(s, mid, args)


def _send_manifest(s, manifest):
    """Returns the indices the gateway needs, or None if it has everything."""
    mid = manifest["id"]
    for attempt in range(RETRIES):
        s.send("manifest", manifest)
        end = time.monotonic() + ANSWER_S
        while time.monotonic() < end:
            r = s.get(end - time.monotonic())
            if r is None:
                break
            if r.get("id") != mid:
                continue
            if r.get("state") == "error":
                raise OtaFail(EXIT_REFUSED, "gateway refused the update: %s" % r.get("reason"))
            if r.get("state") == "need":
                if r.get("current"):
                    return None
                return list(r.get("need") or [])
    raise OtaFail(EXIT_TIMEOUT, "no answer to the manifest within %d s" % ANSWER_S)


def _send_file(s, sid, mid, idx, data, prog):
    """Send one file with a window of WINDOW chunks beyond the last ack.
    Returns "ok" or "restart" (the gateway lost the session)."""
    acked = 0
    sent = 0
    shown = 0
    bad = 0
    stalls = 0
    size = len(data)
    while True:
        while sent < size and sent - acked < WINDOW * CHUNK:
            s.send("chunk", struct.pack("<BHHI", 1, sid, idx, sent) + data[sent:sent + CHUNK])
            sent = min(sent + CHUNK, size)
        r = s.get(ANSWER_S)
        if r is None:
            if time.monotonic() >= s.deadline:
                raise OtaFail(EXIT_TIMEOUT, "timed out sending %s" % ("file %d" % idx))
            stalls += 1
            if stalls > RETRIES:
                raise OtaFail(EXIT_TIMEOUT, "gateway stopped acknowledging chunks (file %d at %d of %d bytes)" % (idx, acked, size))
            sent = acked  # resend from the last acknowledged byte
            continue
        st = r.get("state")
        if st == "no_session" and r.get("sid") == sid:
            return "restart"
        if r.get("id") != mid:
            continue
        if st == "recv" and r.get("file") == idx:
            acked = max(acked, int(r.get("offset", 0)))
            stalls = 0
        elif st == "resend" and r.get("file") == idx:
            sent = acked = int(r.get("offset", 0))
        elif st == "file_ok" and r.get("file") == idx:
            prog.add(size - shown)
            return "ok"
        elif st == "file_bad" and r.get("file") == idx:
            bad += 1
            if bad > 1:
                raise OtaFail(EXIT_REFUSED, "%s failed its hash check twice on the gateway (%s)" % (r.get("path"), r.get("reason")))
            prog.add(-shown)
            shown = 0
            sent = acked = 0
            continue
        elif st == "error":
            raise OtaFail(EXIT_REFUSED, "gateway: %s" % r.get("reason"))
        if acked > shown:
            prog.add(acked - shown)
            shown = acked


def _await_health(s, mid, args):
    committed = False
    booted = False
    while True:
        r = s.get(s.deadline - time.monotonic())
        if r is None:
            if not committed:
                raise OtaFail(EXIT_TIMEOUT, "gateway did not confirm the commit within --timeout %g s" % args.timeout)
            raise OtaFail(EXIT_TIMEOUT, "no health report within --timeout %g s (the gateway rolls back on its own if the new firmware is broken)" % args.timeout)
        if r.get("id") != mid:
            continue
        st = r.get("state")
        if st == "committed":
            committed = True
            sys.stderr.write("vegw ota: committed %s files; gateway rebooting\n" % r.get("files"))
        elif st == "pending":
            booted = True
            sys.stderr.write("vegw ota: new firmware booted (boot %s), waiting for its health report\n" % r.get("boot"))
        elif st == "healthy":
            sys.stdout.write("gateway %s updated to %s and healthy\n" % (args.gateway, r.get("version")))
            return EXIT_OK
        elif st == "rolled_back":
            sys.stderr.write("vegw ota: gateway rolled the update back: %s\n" % r.get("reason"))
            return EXIT_ROLLED_BACK
        elif st == "error":
            raise OtaFail(EXIT_REFUSED, "gateway: %s" % r.get("reason"))
