# Encoder for Victron BLE Instant Readout adverts: the inverse of
# firmware/lib/ble_readout.py. Values (SI, field names as the decoder gives
# them) or raw field integers -> manufacturer data bytes, encrypted with
# AES-128-CTR (counter block = counter lo, counter hi, 14 zero bytes).
#
# Used by the tests, the simulated advertiser and the benchmark. Written in
# the subset MicroPython shares with CPython, so shared tests and the soak run
# can import it on the unix port (put host_tools/vegw on the path).
#
#   encode(record, values, key16, counter, model_id=..., ...) -> bytes
#   encode_raw(record, raws, key16, counter, model_id=..., ...) -> bytes
#   to_raw(record, values) -> {field: raw int}
#
# `record` is a record type number (0x00..0x0F, 0xFF) or a record name
# ("battery_monitor", ...). The result starts at the 0x10 byte (company id
# E1 02 not included) unless company=True. Missing fields and None values are
# sent as the field's "not available" raw value (0 where it has none); unused
# trailing bits are 1s, as real devices send them.
import ble_readout as _br
import ble_tables
import aes_ecb as _aes

DEFAULT_MODEL = {
    0x00: 0xA389, 0x01: 0xA042, 0x02: 0xA389, 0x03: 0xA2E1, 0x04: 0xA3C0,
    0x05: 0xA3E0, 0x06: 0xA401, 0x07: 0xA3FF, 0x08: 0xA339, 0x09: 0xA3B0,
    0x0A: 0xA3E5, 0x0B: 0xA442, 0x0C: 0x2780, 0x0D: 0xA389, 0x0F: 0xA3F0,
    0xFF: 0xC050,
}


def record_number(record):
    """(record type, subtype) for a record name or number."""
    if isinstance(record, int):
        return (record, _br.SUBTYPE_SOLARSENSE if record == _br.RECORD_UNENCRYPTED else 0)
    for rt, sub, name in ble_tables.record_types():
        if name == record:
            return (rt, sub)
    raise ValueError("unknown record %r" % (record,))


def _spec(record):
    rt, sub = record_number(record)
    spec = ble_tables.record_spec(rt, sub)
    if spec is None:
        raise ValueError("unknown record %r" % (record,))
    return rt, sub, spec[1]


def _untier(minutes):
    m = int(minutes)
    if m <= 58:
        return m // 2
    if m <= 710:
        return 30 + (m - 60) // 10
    return 96 + (m - 720) // 30


def _inverse(v, div, add):
    if div == 1:
        return int(round(v - add))
    return int(round((v - add) * div))


def _na_raw(f):
    na = f[6]
    return 0 if na == _br.NO_NA else na


def to_raw(record, values):
    """SI values -> raw field integers (signed fields as negative ints)."""
    rt, sub, fields = _spec(record)
    raws = {}
    aux_sel = 3
    aux_raw = 0
    if "aux_input" in values:
        aux_sel = values["aux_input"]
    for sel in range(3):
        name = _br.AUX_MODES[sel][0]
        if name in values:
            m = _br.AUX_MODES[sel]
            aux_sel = sel
            v = values[name]
            aux_raw = m[4] if v is None else _inverse(v, m[2], m[3]) & 0xFFFF
    for f in fields:
        name = f[0]
        fl = f[3]
        if fl & _br.F_SEL:
            raws[name] = aux_sel
            continue
        if fl & _br.F_AUX:
            raws[name] = aux_raw
            continue
        v = values.get(name)
        if v is None:
            raws[name] = _na_raw(f)
        elif fl & _br.F_TIER:
            raws[name] = _untier(v)
        elif fl & _br.F_TX:
            raws[name] = int(v) // 6
        else:
            raws[name] = _inverse(v, f[4], f[5])
    return raws


def payload_bits(record):
    """Bits the record's fields occupy (the payload is this rounded up to bytes)."""
    rt, sub, fields = _spec(record)
    end = 0
    for f in fields:
        if f[1] + f[2] > end:
            end = f[1] + f[2]
    return end


def encode_raw(record, raws, key16, counter, model_id=None, prefix=0x02, payload_len=None, company=False, key_check=None):
    """Raw field integers -> manufacturer data. A field missing from `raws`
    gets its NA raw value. Signed raws may be negative (masked to the width)."""
    rt, sub, fields = _spec(record)
    nbits = payload_bits(record)
    if payload_len is None:
        payload_len = (nbits + 7) // 8
    plain = bytearray(b"\xff" * payload_len)
    for f in fields:
        off, w = f[1], f[2]
        v = raws.get(f[0])
        if v is None:
            v = _na_raw(f)
        v &= (1 << w) - 1
        for b in range(w):  # bit by bit: slow, but simple and obviously right
            pos = off + b
            if (pos >> 3) >= payload_len:
                break
            if (v >> b) & 1:
                plain[pos >> 3] |= 1 << (pos & 7)
            else:
                plain[pos >> 3] &= ~(1 << (pos & 7)) & 0xFF
    if model_id is None:
        model_id = DEFAULT_MODEL.get(rt, 0xA389)
    counter &= 0xFFFF
    out = bytearray(8 + payload_len)
    out[0] = 0x10
    out[1] = prefix
    out[2] = model_id & 0xFF
    out[3] = model_id >> 8
    out[4] = rt
    out[5] = counter & 0xFF
    out[6] = counter >> 8
    if rt == _br.RECORD_UNENCRYPTED:
        out[7] = sub
        out[8:] = plain
    else:
        out[7] = key16[0] if key_check is None else key_check
        ctr = bytearray(16)
        ctr[0] = counter & 0xFF
        ctr[1] = counter >> 8
        ks = _aes.new(key16).encrypt(ctr)
        for i in range(payload_len):
            out[8 + i] = plain[i] ^ ks[i]
    if company:
        return b"\xe1\x02" + bytes(out)
    return bytes(out)


def encode(record, values, key16, counter, model_id=None, prefix=0x02, payload_len=None, company=False, key_check=None):
    """SI values (decoder field names) -> manufacturer data bytes."""
    return encode_raw(record, to_raw(record, values), key16, counter, model_id, prefix, payload_len, company, key_check)
