"""The validated config is cached: the boot that validates it asks for a
restart, the next boots run from the cache without importing the validator
(its names would stay in RAM for good), and any change to config.json, a
damaged cache or a pending OTA update is handled."""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "firmware" / "lib"), str(ROOT / "firmware")]

import boot_config  # noqa: E402

CFG = {"gateway": {"id": "cache1"}, "mqtt": {"host": "127.0.0.1", "username": "site", "password": "pw-not-default-1"},
       "devices": [{"name": "house", "type": "vedirect", "uart": 1, "rx": 16, "tx": 17}],
       "alarms": {"rules": ["low_soc: warning: house.SOC < 30 for 2m clear 35"]}}


class DictStore:
    def __init__(self):
        self.blobs = {}
        self.fail = False

    def save(self, name, data):
        if self.fail:
            raise OSError(28)  # ENOSPC
        self.blobs[name] = data.encode() if isinstance(data, str) else bytes(data)

    def load(self, name):
        return self.blobs.get(name)


class Platform:
    def __init__(self, cfg, store):
        self.raw = json.dumps(cfg)
        self.store = store

    def read_config(self):
        return self.raw

    def board(self):
        return None

    def state_store(self):
        return self.store


def test_validate_once_then_boot_from_the_cache(monkeypatch):
    store = DictStore()
    p = Platform(CFG, store)
    assert boot_config.load_config(p) == boot_config.RESTART
    assert b"pw-not-default-1" in store.blobs["config"]  # on the device's flash, like config.json
    # the next boot must not import the validator or the rule compiler
    monkeypatch.setitem(sys.modules, "cfg_schema", None)
    monkeypatch.setitem(sys.modules, "alarm_rules", None)
    cfg, rules = boot_config.load_config(p)
    assert cfg["gateway"]["id"] == "cache1" and cfg["mqtt"]["port"] == 1883  # normalized (defaults filled)
    assert len(rules) == 1 and rules[0][0] == "low_soc" and isinstance(rules[0][2], tuple)


def test_compiled_rules_from_the_cache_equal_a_fresh_compile():
    import alarm_rules

    store = DictStore()
    p = Platform(CFG, store)
    assert boot_config.load_config(p) == boot_config.RESTART
    _, rules = boot_config.load_config(p)
    fresh, errors = alarm_rules.parse_rules(CFG["alarms"]["rules"], alarm_rules.default_field_ok(["house"]))
    assert not errors and rules == fresh


def test_a_changed_config_is_validated_again():
    store = DictStore()
    assert boot_config.load_config(Platform(CFG, store)) == boot_config.RESTART
    bad = json.loads(json.dumps(CFG))
    bad["devices"][0]["uart"] = 7
    assert boot_config.load_config(Platform(bad, store)) is None  # refused, not run from the old cache
    good = json.loads(json.dumps(CFG))
    good["gateway"]["id"] = "cache2"
    assert boot_config.load_config(Platform(good, store)) == boot_config.RESTART
    cfg, _ = boot_config.load_config(Platform(good, store))
    assert cfg["gateway"]["id"] == "cache2"


def test_a_damaged_cache_costs_a_validation_only():
    store = DictStore()
    p = Platform(CFG, store)
    assert boot_config.load_config(p) == boot_config.RESTART
    store.blobs["config"] = store.blobs["config"][:40]  # torn
    assert boot_config.load_config(p) == boot_config.RESTART
    assert boot_config.load_config(p)[0]["gateway"]["id"] == "cache1"


def test_no_restart_loop_when_the_cache_cannot_be_written():
    store = DictStore()
    store.fail = True
    cfg, rules = boot_config.load_config(Platform(CFG, store))  # runs this boot instead
    assert cfg["gateway"]["id"] == "cache1" and len(rules) == 1


def test_an_update_awaiting_its_health_check_boots_once():
    store = DictStore()
    cfg, rules = boot_config.load_config(Platform(CFG, store), restart=False)
    assert cfg["gateway"]["id"] == "cache1"
    assert boot_config.load_config(Platform(CFG, store)) != boot_config.RESTART  # cached meanwhile


def test_no_store_validates_every_boot():
    cfg, rules = boot_config.load_config(Platform(CFG, None))
    assert cfg["gateway"]["id"] == "cache1" and len(rules) == 1
