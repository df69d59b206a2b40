# The parser's viper kernel (vedirect_kernel.py): machine code on
# MicroPython, the same source as plain Python on CPython. These cases hit
# the places where viper differs from Python (unsigned pointer loads, a
# 32-bit word on the ESP32) and the store-what-changed cache.
import vedirect
import vedirect_fields as F
import vedirect_kernel as K
from _util import ve_block as block



class Dev:
    def __init__(self):
        self.raw = {}
        self.changed = []
        self.p = vedirect.Parser(self.on_block)

    def on_block(self, b):
        self.changed.append(F.update(b, self.raw))

    def feed(self, pairs):
        self.p.feed(block(pairs))
        return self.changed[-1]


def _consts(path, prefix):
    # NAME = const(N) lines of a module's source (underscore consts are not
    # module attributes on MicroPython: compare the text)
    out = {}
    with open(path) as f:
        for line in f:
            if line.startswith(prefix) and "= const(" in line:
                name, rest = line.split("=", 1)
                out[name.strip()] = int(rest.split("const(")[1].split(")")[0])
    return out


def test_mirrored_constants_agree_with_the_kernel():
    lib = "firmware/lib/"  # both runners start in the repository root
    kern = _consts(lib + "vedirect_kernel.py", "_")
    n = 0
    for path in ("vedirect.py", "vedirect_fields.py"):
        for name, v in _consts(lib + path, "_").items():
            if name in kern and (name.startswith("_SV_") or name.startswith("_BAD_") or name in (
                    "_S_SYNC", "_EV_MORE", "_EV_HEX", "_HT_SLOTS", "_TEXT_SLOT", "_MAX_FEED")):
                assert kern[name] == v, (path, name, v, kern[name])
                n += 1
    assert n >= 17, n


def test_every_label_is_found_by_the_kernel_and_no_other():
    # split() looks each label up in the table's hash (Block.entry); a label
    # one byte longer, or a near miss, is unknown
    got = []
    p = vedirect.Parser(lambda b: got.append([b.entry(i) for i in range(b.count)]))
    for k, name in enumerate(F.NAMES):
        val = b"ON" if name in ("LOAD", "Alarm", "Relay") else b"1"
        pairs = [(name.encode(), val)]
        if len(name) < 8:
            pairs.append((name.encode() + b"Z", b"1"))
        p.feed(block(pairs))
        assert got[-1] == [k, -1][: len(pairs)], name
    p.feed(block([(b"Vx", b"1"), (b"H24", b"1"), (b"SER$", b"1")]))
    assert got[-1] == [-1, -1, -1]


def test_signed_and_wide_numbers_come_out_exact():
    d = Dev()
    d.feed([(b"V", b"-2147483648"), (b"I", b"9999999999"), (b"P", b"-999999999"), (b"T", b"2147483647"),
            (b"H1", b"-1"), (b"PID", b"0xFFFFFFFF"), (b"OR", b"0x80000001")])
    r = d.raw
    assert r["V"] == -2147483648 and r["I"] == 9999999999 and r["P"] == -999999999
    assert r["T"] == 2147483647 and r["H1"] == -1
    assert r["PID"] == 0xFFFFFFFF and r["OR"] == 0x80000001
    # a repeat changes nothing, a change in one field changes one
    assert d.feed([(b"V", b"-2147483648"), (b"H1", b"-1"), (b"OR", b"0x80000001")]) == 0
    assert d.feed([(b"V", b"-2147483647"), (b"H1", b"-1"), (b"OR", b"0x80000001")]) == 1
    assert r["V"] == -2147483647
    d.feed([(b"PID", b"0x7FFFFFFF"), (b"OR", b"0x7fffffff")])  # the widest hex a word holds
    assert r["PID"] == 0x7FFFFFFF and r["OR"] == 0x7FFFFFFF


def test_value_forms_per_kind():
    d = Dev()
    d.feed([(b"LOAD", b"ON"), (b"Relay", b"off"), (b"Alarm", b"On"), (b"T", b"---"), (b"SER#", b"HQ1"),
            (b"FW", b"0415"), (b"PID", b"0x0A"), (b"ERR", b"0")])
    r = d.raw
    assert r["LOAD"] is True and r["Relay"] is False and r["Alarm"] is True and r["T"] is None
    assert r["SER#"] == b"HQ1" and r["FW"] == b"0415" and r["PID"] == 10 and r["ERR"] == 0
    # malformed values: the whole block is refused, nothing stored
    for lab, val in ((b"LOAD", b"OX"), (b"T", b"1x"), (b"PID", b"0x"), (b"PID", b"---"), (b"V", b"-"),
                     (b"V", b"12345678901"), (b"OR", b"0x123456789"), (b"FW", b""), (b"SER#", b"a\x7f"),
                     (b"LOAD", b"O")):
        before = dict(r)
        d.p.feed(block([(lab, val), (b"V", b"1")]))
        assert r == before, (lab, val)
    assert d.p.malformed == 10


def test_text_is_stored_only_when_it_changes_and_exactly():
    d = Dev()
    assert d.feed([(b"SER#", b"HQ2231ABCDE"), (b"V", b"1")]) == 2
    assert d.feed([(b"SER#", b"HQ2231ABCDE"), (b"V", b"1")]) == 0
    assert d.feed([(b"SER#", b"HQ2231ABCDF"), (b"V", b"1")]) == 1  # last byte only
    assert d.raw["SER#"] == b"HQ2231ABCDF"
    assert d.feed([(b"SER#", b"HQ2231ABCD"), (b"V", b"1")]) == 1  # shorter, same prefix
    assert d.raw["SER#"] == b"HQ2231ABCD"
    long = b"A" * 32
    assert d.feed([(b"SER#", long), (b"V", b"1")]) == 1 and d.raw["SER#"] == long


def test_the_cache_starts_over_for_another_dict_or_an_outside_change():
    d = Dev()
    d.feed([(b"V", b"12000"), (b"I", b"5")])
    other = {}
    d.p.on_block = lambda b: d.changed.append(F.update(b, other))
    d.p.feed(block([(b"V", b"12000"), (b"I", b"5")]))
    assert other == {"V": 12000, "I": 5} and d.changed[-1] == 2
    # the first dict lost a key (its size changed): every field is stored again
    del d.raw["V"]
    d.p.on_block = d.on_block
    assert d.feed([(b"V", b"12000"), (b"I", b"5")]) == 1 and d.raw["V"] == 12000


def test_unknown_labels_and_duplicates():
    d = Dev()
    d.feed([(b"V", b"1"), (b"NEW1", b"a b\tc"), (b"NEW2", b"x")])
    assert d.raw["NEW1"] == b"a b\tc" and d.raw["NEW2"] == b"x"
    d.p.feed(block([(b"V", b"1"), (b"NEW1", b"a"), (b"NEW1", b"b")]))
    d.p.feed(block([(b"V", b"1"), (b"V", b"2")]))
    assert d.p.dup_labels == 2


def test_hex_frame_check():
    assert K.hex_ok(b":154\n", 5) == 1  # ping reply (HEX protocol 1, 0x55 total)
    assert K.hex_ok(b":154\r", 5) == 0 and K.hex_ok(b":15\n", 4) == 0 and K.hex_ok(b":1a4\n", 5) == 0
    assert K.hex_ok(b":155\n", 5) == 0


def test_checksum_and_remove():
    buf = bytearray(b"\x01\x02\xff\x03")
    assert K.checksum(buf, 0, 4) == 5 and K.checksum(buf, 1, 3) == 1
    assert K.remove(buf, 0, 2, 4) == 2 and buf[:2] == b"\xff\x03"


def test_counters_kept_by_the_kernel():
    # bytes_in and blocks_ok live in the kernel's state array: bytes_in as
    # two words (mod 2**30 and the carries), so it runs past a 32-bit word
    d = Dev()
    d.p._state[5] = (1 << 30) - 3  # vedirect_kernel._SV_BYTES_LO, 3 bytes before its carry
    one = block([(b"V", b"1"), (b"I", b"-1")])
    d.p.feed(one)
    assert d.p.bytes_in == (1 << 30) - 3 + len(one) and d.p._state[12] == 1  # _SV_BYTES_HI
    d.p.feed(bytearray(one) + b"junk", len(one))  # length limits what is taken
    assert d.p.blocks_ok == 2 and d.p.bytes_in == (1 << 30) - 3 + 2 * len(one)
    d.p.feed(b"")
    assert d.p.blocks_ok == 2 and d.changed == [2, 0]


def test_a_number_sent_after_text_or_the_dict_changed_by_another_hand():
    # the cache is trusted only while the dict is its own: a fresh cache asks
    # the dict, so a value already there does not count as a change
    d = Dev()
    assert d.feed([(b"V", b"-5"), (b"SER#", b"HQ1")]) == 2 and d.raw["V"] == -5
    d.raw["Other"] = 1  # its size changed: the parser's cache starts over
    assert d.feed([(b"V", b"-5"), (b"SER#", b"HQ1")]) == 0
    d.raw["V"] = 7
    d.raw["Other"] = 2
    d.raw.pop("Other")  # another size: the cache starts over and finds V changed
    assert d.feed([(b"V", b"-5"), (b"SER#", b"HQ1")]) == 1 and d.raw["V"] == -5
    assert d.feed([(b"V", b"-6"), (b"SER#", b"HQ2")]) == 2 and d.raw == {"V": -6, "SER#": b"HQ2"}


def test_a_dict_changed_behind_the_cache_never_stops_the_updates():
    # same size, so the cache still looks valid: the text it remembers is gone
    # or is no longer bytes; the update must go on, not raise for every block
    d = Dev()
    assert d.feed([(b"V", b"1"), (b"SER#", b"HQ1")]) == 2
    del d.raw["SER#"]
    d.raw["X"] = 5
    d.feed([(b"V", b"2"), (b"SER#", b"HQ1")])  # counts SER#; V may go uncounted in this one block
    assert d.raw == {"V": 2, "SER#": b"HQ1", "X": 5} and d.changed[-1] >= 1
    d.raw["SER#"] = 7  # not bytes any more
    d.feed([(b"V", b"2"), (b"SER#", b"HQ1")])
    assert d.raw["SER#"] == b"HQ1" and d.changed[-1] == 1
    assert d.feed([(b"V", b"3"), (b"SER#", b"HQ1")]) == 1 and d.raw["V"] == 3
    assert d.feed([(b"V", b"3"), (b"SER#", b"HQ2")]) == 1 and d.p.callback_errors == 0
