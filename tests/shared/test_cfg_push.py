# A config.json pushed over MQTT (lib/cfg_push.py) on an in-memory
# filesystem, under both runtimes: parts, the schema's refusal with its
# path, the swap, health, rollback by boots and by timeout, power cuts at
# every journal step.
import binascii
import hashlib
import json

import cfg_push
from test_ota import Clock, MemFs, PowerCut

MP_HEAPSIZE = "1M"

OLD = {"gateway": {"id": "gw1"}, "mqtt": {"host": "10.0.0.1", "username": "u", "password": "pw-old-not-default"}}
NEW = {"gateway": {"id": "gw1"}, "mqtt": {"host": "10.0.0.2", "username": "u", "password": "pw-new-not-default"}}


class Fs(MemFs):
    def open(self, path, mode):
        if "a" in mode:  # append: the parts of a push
            self._op()
            if path not in self.files:
                self.files[path] = bytearray()
            return MemFs.open(self, path, "rb")
        return MemFs.open(self, path, mode)


def body(cfg):
    return json.dumps(cfg).encode()


def parts(data, pid="p1", size=40):
    n = (len(data) + size - 1) // size
    return [{"cmd": "config_part", "id": pid, "part": k, "parts": n,
             "data": binascii.hexlify(data[k * size:(k + 1) * size]).decode()} for k in range(n)]


def apply_msg(data, pid="p1"):
    return {"cmd": "config_apply", "id": pid, "size": len(data),
            "sha256": binascii.hexlify(hashlib.sha256(data).digest()).decode()}


def push(p, data, pid="p1"):
    reps = [p.part(m) for m in parts(data, pid)]
    assert [r["state"] for r in reps] == ["part_ok"] * (len(reps) - 1) + ["received"], reps
    return p.apply(apply_msg(data, pid), None)


def fresh():
    fs = Fs({"config.json": body(OLD)})
    return fs, Clock()


def test_push_swaps_then_health_keeps_it():
    fs, clock = fresh()
    p = cfg_push.ConfigPush(fs, clock)
    r = push(p, body(NEW))
    assert r["state"] == "applied" and r["reboot"] is True
    assert bytes(fs.files["config.json"]) == body(NEW) and bytes(fs.files["config.json.bak"]) == body(OLD)
    assert p.mark_healthy() == []  # this run still runs the old config
    p2 = cfg_push.ConfigPush(fs, clock)  # the reboot
    assert [r["state"] for r in p2.boot_check()] == ["trying"]
    assert [r["state"] for r in p2.mark_healthy()] == ["healthy"]
    assert "config.json.bak" not in fs.files and "config_push.json" not in fs.files
    assert bytes(fs.files["config.json"]) == body(NEW)
    assert cfg_push.ConfigPush(fs, clock).boot_check() == []


def test_schema_error_refused_with_its_path_and_nothing_changed():
    fs, clock = fresh()
    p = cfg_push.ConfigPush(fs, clock)
    bad = dict(NEW, mqtt={"host": "10.0.0.2", "port": 70000})
    r = push(p, body(bad))
    assert r["state"] == "refused" and r["path"] == "mqtt.port" and r["reason"], r
    assert bytes(fs.files["config.json"]) == body(OLD) and sorted(fs.files) == ["config.json"]
    r = push(p, b"{not json")
    assert r["state"] == "refused" and "JSON" in r["reason"]


def test_parts_checked_size_hash_and_order():
    fs, clock = fresh()
    p = cfg_push.ConfigPush(fs, clock)
    ps = parts(body(NEW))
    assert p.part(ps[0])["state"] == "part_ok"
    assert p.part(ps[2])["state"] == "error"  # a part missing
    for m in ps:
        p.part(m)
    wrong = apply_msg(body(NEW))
    wrong["sha256"] = "00" * 32
    assert p.apply(wrong, None)["state"] == "error"
    assert sorted(fs.files) == ["config.json"]
    assert p.apply(apply_msg(body(NEW), "other"), None)["state"] == "error"
    for junk in ({}, {"id": "x", "part": "0", "parts": 1, "data": ""}, {"id": "x", "part": 0, "parts": 99, "data": ""},
                 {"id": "x", "part": 0, "parts": 1, "data": "zz"}):
        assert p.part(junk)["state"] == "error"
    big = [{"cmd": "config_part", "id": "b", "part": k, "parts": 32, "data": "00" * 600} for k in range(32)]
    assert [p.part(m)["state"] for m in big][-1] == "error"  # over MAX_SIZE: dropped
    assert "config.json.new" not in fs.files


def test_rolled_back_after_boots_without_health():
    fs, clock = fresh()
    push(cfg_push.ConfigPush(fs, clock), body(NEW))
    for boot in (1, 2):
        assert [r["boot"] for r in cfg_push.ConfigPush(fs, clock).boot_check()] == [boot]
    r = cfg_push.ConfigPush(fs, clock).boot_check()
    assert [x["state"] for x in r] == ["rolled_back"] and "2 boots" in r[0]["reason"]
    assert bytes(fs.files["config.json"]) == body(OLD) and sorted(fs.files) == ["config.json"]


def test_rolled_back_when_not_healthy_in_time():
    fs, clock = fresh()
    push(cfg_push.ConfigPush(fs, clock, health_timeout_ms=60000), body(NEW))
    p = cfg_push.ConfigPush(fs, clock, health_timeout_ms=60000)
    p.boot_check()
    clock.t += 59000
    assert p.tick() is False
    clock.t += 2000
    assert p.tick() is True  # reboot now, into the old config
    assert bytes(fs.files["config.json"]) == body(OLD) and not p.pending()
    # the boot with the old config back says what happened, once
    r = cfg_push.ConfigPush(fs, clock).boot_check()
    assert [x["state"] for x in r] == ["rolled_back"] and "60 s" in r[0]["reason"]
    assert cfg_push.ConfigPush(fs, clock).boot_check() == [] and sorted(fs.files) == ["config.json"]


def test_power_cut_at_every_step_leaves_one_whole_config():
    data = body(NEW)
    n = 0
    while True:
        fs, clock = fresh()
        p = cfg_push.ConfigPush(fs, clock)
        for m in parts(data):
            p.part(m)
        fs.budget = n
        try:
            p.apply(apply_msg(data), None)
            done = True
        except PowerCut:
            done = False
        fs.budget = -1
        cfg_push.ConfigPush(fs, clock).boot_check()
        got = bytes(fs.files["config.json"])
        assert got in (body(OLD), body(NEW)), (n, got)
        if done:
            break
        n += 1
    assert n >= 4
