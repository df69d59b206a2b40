# The configuration a boot runs with (app.main calls load_config first).
# The validator and the rule compiler intern ~200 names, and interned names
# (qstrs) are never freed: the normalized config and the compiled rules are
# cached in the state store, keyed by a hash of config.json, the board file
# and the OTA version, and the gateway boots again (RESTART) without ever
# importing them. Boot only: app.main drops this module after the call.
import gc
import json
import sys

RESTART = 4  # config validated and cached just now: boot again (app.RESTART)
_CFG_CACHE = "config"  # state-store name of the validated config and its compiled rules


def load_config(platform, restart=True):
    """(config, compiled alarm rules) ready to run; None if config.json is
    refused; RESTART when it was validated just now (and cached).
    restart=False (an update awaiting its health check) runs this boot."""
    raw = platform.read_config()
    board = platform.board()
    store = platform.state_store()
    key = _config_key(raw, board)
    if store is not None:
        got = _cached_config(store, key)
        if got is not None:
            return got
    try:
        cfg = json.loads(raw)
    except Exception as e:
        log("config.json is not valid JSON:", repr(e))
        return None
    import cfg_schema

    norm, errors = cfg_schema.validate(cfg, board)
    for path, msg in errors:
        log("config error:", path + ":", msg)
    if not errors:
        log("config:", json.dumps(cfg_schema.masked(norm)))  # secrets masked
    del cfg_schema
    if errors:
        _unload(*_BOOT_ONLY)
        return None
    import alarm_rules

    devices = [d["name"] for d in norm.get("devices", ())]
    rules, rule_errors = alarm_rules.parse_rules((norm.get("alarms") or {}).get("rules") or [],
                                                 alarm_rules.default_field_ok(devices))
    for e in rule_errors:  # the schema checked them already; report anyway
        log("alarm rule refused:", e)
    del alarm_rules
    _unload(*_BOOT_ONLY)
    if store is not None:
        try:
            store.save(_CFG_CACHE, json.dumps({"key": key, "cfg": norm, "rules": rules}))
            if restart and _cached_config(store, key) is not None:
                log("config validated: booting again with it")
                return RESTART
        except (OSError, MemoryError) as e:  # run with it now; validate again next boot
            log("validated config not cached:", repr(e))
    return norm, rules


def _config_key(raw, board):
    import binascii
    import hashlib

    h = hashlib.sha256(raw.encode() if isinstance(raw, str) else raw)
    h.update(json.dumps(board).encode())
    try:  # an OTA update may change the schema: its first boot validates again
        with open("ota_version.json", "rb") as f:
            h.update(f.read())
    except OSError:
        pass
    return binascii.hexlify(h.digest()).decode()


def _cached_config(store, key):
    try:
        d = json.loads(store.load(_CFG_CACHE) or "{}")
        if d.get("key") != key:
            return None
        return d["cfg"], [_tuples(r) for r in d["rules"]]
    except Exception:  # noqa: BLE001 - a damaged cache only costs a validation
        return None


def _tuples(x):
    # compiled rules are nested tuples (JSON gives lists)
    return tuple(_tuples(i) for i in x) if isinstance(x, list) else x


def log(*args):
    print("vegw:", *args)


# boot-only modules (and what they import), dropped once the config is read
_BOOT_ONLY = ("cfg_schema", "cfg_cross", "boardinfo", "alarm_rules", "field_aliases", "metrics", "ble_readout", "aes_ecb",
              "ble_keys")


def _unload(*names):
    for n in names:
        sys.modules.pop(n, None)
    gc.collect()
