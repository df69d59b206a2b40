"""vegw ble-decode --key HEX ADVERT_HEX: one Victron Instant Readout advert -> JSON.

ADVERT_HEX is the manufacturer data, with or without the leading company id
bytes e102 (spaces and ':' between bytes are ignored). The key is the 32 hex
character "encryption key" from VictronConnect (not needed for the
unencrypted SolarSense record).

Output contract: one JSON object on stdout,
  {"record": "battery_monitor", "record_type": 2, "model_id": 41865,
   "model": "SmartShunt 500A/50mV" | null, "counter": 16560,
   "values": {"V": 12.53, "I": 0.0, "TTG": null, ...},
   "names": {"CS": "bulk", "AR": ["low_voltage"], ...}}
`values` uses the decoder's field names and SI units (null = not available);
`names` spells out the enum codes and bit masks present in `values`.
Errors (wrong key, malformed advert, unknown record, bad arguments): one line
on stderr, exit status 2.
"""
import json
import sys

from . import LIB  # noqa: F401  (puts firmware/lib on sys.path)

import ble_readout as br
import ble_tables
import ble_keys


def add_arguments(p):
    p.add_argument("--key", help="32 hex character instant-readout key from VictronConnect")
    p.add_argument("advert", metavar="ADVERT_HEX", help="manufacturer data as hex, with or without the company id e102")


def _fail(msg):
    sys.stderr.write(msg + "\n")
    return 2


def _model_name(model_id):
    try:
        import vedirect_text

        return vedirect_text.product_name(model_id)
    except Exception:  # noqa: BLE001 - the name is a nicety; never fail on it
        return None


def parse_hex(text):
    """Bytes from hex text with optional spaces, ':' or '-' separators and 0x."""
    t = text.strip().lower()
    if t.startswith("0x"):
        t = t[2:]
    for sep in (" ", ":", "-", "\t"):
        t = t.replace(sep, "")
    if not t:
        raise ValueError("advert is empty")
    if len(t) % 2:
        raise ValueError("advert hex has an odd number of digits (%d)" % len(t))
    try:
        return bytes.fromhex(t)
    except ValueError:
        bad = next(c for c in t if c not in "0123456789abcdef")
        raise ValueError("advert is not hex: unexpected %r" % bad)


def run(args):
    try:
        data = parse_hex(args.advert)
    except ValueError as e:
        return _fail(str(e))
    key = None
    if args.key is not None:
        problem = ble_keys.key_problem(args.key)
        if problem:
            return _fail(problem)
        key = ble_keys.key_bytes(args.key)
    d = br.Decoder()
    st = d.envelope(data)
    if st == br.NOT_READOUT:
        return _fail("not an instant-readout advert: first byte after the company id is 0x%02x, expected 0x10"
                     % data[2 if data[:2] == b"\xe1\x02" else 0])
    if st == br.MALFORMED:
        n = len(data) - (2 if data[:2] == b"\xe1\x02" and len(data) >= 2 else 0)
        return _fail("malformed advert: %d bytes after the company id, expected 9 to 24" % n)
    if st == br.UNKNOWN_RECORD:
        return _fail("unknown record type 0x%02x (model id 0x%04x)" % (d.record_type, d.model_id))
    if d.record_type != br.RECORD_UNENCRYPTED:
        if key is None:
            return _fail("this advert is encrypted: --key is required")
        if d.key_check != key[0]:
            return _fail("key does not match this advert: advert key byte is %02x, the key starts with %02x"
                         % (d.key_check, key[0]))
    st = d.decode(data, key)
    if st != br.OK:  # not reached after the checks above; kept as a guard
        return _fail("cannot decode advert: " + st)
    values = d.values()
    names = {}
    for k, v in values.items():
        n = ble_tables.code_name(k, v)
        if n is not None:
            names[k] = n
    out = {
        "record": d.record,
        "record_type": d.record_type,
        "model_id": d.model_id,
        "model": _model_name(d.model_id),
        "counter": d.counter,
        "values": values,
        "names": names,
    }
    sys.stdout.write(json.dumps(out) + "\n")
    return 0
