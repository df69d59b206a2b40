# Proof for what changes a gateway: HMAC-SHA256 with the gateway's own key
# (derived on the laptop from the operator's fleet key and the gateway id),
# over text that names the gateway and a counter the gateway has not seen.
# OTA (ota_rx.py) and the commands that change state (reboot, log_interval)
# use it. hashlib only: there is no hmac module on the board.
import hashlib


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(64 - len(key))
    inner = hashlib.sha256(bytes([b ^ 0x36 for b in key]) + msg).digest()
    return hashlib.sha256(bytes([b ^ 0x5C for b in key]) + inner).digest()


def derive_key(fleet_key, gateway):
    """The gateway's key: HMAC-SHA256(fleet key, "vegw-ota:" + gateway id)."""
    return hmac_sha256(bytes(fleet_key), ("vegw-ota:" + gateway).encode())


def same(a, b):
    # constant-time comparison of two hex strings
    if not isinstance(a, str) or len(a) != len(b):
        return False
    d = 0
    for i in range(len(b)):
        d |= ord(a[i]) ^ ord(b[i])
    return d == 0


def cmd_text(msg):
    """What a command's signature covers: every field but "sig", sorted."""
    return ("cmd\n" + "\n".join("%s=%s" % (k, msg[k]) for k in sorted(msg) if k != "sig")).encode()


def hexsig(key, text):
    import binascii

    return binascii.hexlify(hmac_sha256(key, text)).decode()


def check_cmd(msg, key, gateway, last_ctr):
    """None if command dict `msg` is signed for `gateway` with `key` and its
    "ctr" is above last_ctr; else the reason it is refused."""
    if key is None:
        return "commands that change the gateway need its ota.key"
    if msg.get("gw") != gateway or msg.get("sig") is None:
        return "not signed for this gateway"
    ctr = msg.get("ctr")
    if type(ctr) is not int or ctr <= last_ctr:
        return "replayed or older command (counter %s, last %s)" % (ctr, last_ctr)
    if not same(msg.get("sig"), hexsig(key, cmd_text(msg))):
        return "bad signature"
    return None
