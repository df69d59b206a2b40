# BLE key and MAC address text from the config: checks (for config
# validation) and conversion to bytes. Used by ble_readout's Tracker.add()
# for text keys, cfg_schema, the drivers and the host tools.


def _hexval(c):
    o = ord(c)
    if 48 <= o <= 57:
        return o - 48
    o |= 0x20
    if 97 <= o <= 102:
        return o - 87
    return -1


def key_problem(key_text):
    """None if `key_text` is a usable 32-hex-character key, else the reason."""
    if not isinstance(key_text, str):
        return "ble key must be a string of 32 hex characters"
    k = key_text.strip()
    if len(k) != 32:
        return "ble key must be 32 hex characters, got %d" % len(k)
    for i in range(32):
        if _hexval(k[i]) < 0:
            return "ble key must be 32 hex characters, found %r at position %d" % (k[i], i + 1)
    return None


def key_bytes(key_text):
    """16 key bytes from a key that passed key_problem()."""
    k = key_text.strip()
    out = bytearray(16)
    for i in range(16):
        out[i] = (_hexval(k[2 * i]) << 4) | _hexval(k[2 * i + 1])
    return bytes(out)


def mac_problem(text):
    """None if `text` is a MAC address AA:BB:CC:DD:EE:FF (':' or '-'), else why."""
    if not isinstance(text, str):
        return "ble mac must be a string like AA:BB:CC:DD:EE:FF"
    m = text.strip()
    if len(m) != 17:
        return "ble mac must look like AA:BB:CC:DD:EE:FF, got %r" % text
    sep = m[2]
    if sep not in ":-":
        return "ble mac must look like AA:BB:CC:DD:EE:FF, got %r" % text
    for i in range(17):
        if i % 3 == 2:
            if m[i] != sep:
                return "ble mac must look like AA:BB:CC:DD:EE:FF, got %r" % text
        elif _hexval(m[i]) < 0:
            return "ble mac must look like AA:BB:CC:DD:EE:FF, got %r" % text
    return None


def mac_bytes(text):
    """6 address bytes, in display order, from a MAC that passed mac_problem()."""
    m = text.strip()
    out = bytearray(6)
    for i in range(6):
        out[i] = (_hexval(m[3 * i]) << 4) | _hexval(m[3 * i + 1])
    return bytes(out)
