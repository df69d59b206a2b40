# Seeded fault fuzz of the VE.Direct parser (tests/shared and bench share it;
# runs on both runtimes). Real-shaped blocks from the fixtures go out in
# order with faults on some of them: cut short (the rest of the block lost),
# one byte changed, one byte lost, a HEX frame inside, a HEX frame between
# the \r and \n that open the block. Counted:
#   false_accepts  blocks handed out that no device sent (must be 0)
#   intact / lost  untouched blocks sent / not handed out
import vedirect
from _util import Rng, read_fixture

FIXTURES = ("gen_mppt.bin", "gen_bmv712.bin", "gen_smartshunt.bin", "gen_inverter.bin", "gen_charger.bin")
HEXF = b":A0102000543\n"


def reference_blocks():
    out = []
    p = vedirect.Parser(lambda b: out.append(b.raw()))
    for name in FIXTURES:
        p.feed(read_fixture(name))
        p.reset()
    return out


def run(seed=1, blocks=2000, fault_every=4):
    rng = Rng(seed)
    ref = reference_blocks()
    known = {}
    for b in ref:
        known[b] = True
    sent = []  # (block, intact)
    parts = []
    for k in range(blocks):
        b = ref[k % len(ref)]
        f = rng.below(fault_every * 5)
        if f == 0:  # cut short
            cut = 1 + rng.below(len(b) - 1)
            parts.append(b[:cut])
            sent.append((b, False))
            continue
        if f == 1:  # one byte changed
            bb = bytearray(b)
            pos = rng.below(len(bb))
            bb[pos] = (bb[pos] + 1 + rng.below(255)) & 0xFF
            parts.append(bytes(bb))
            sent.append((b, False))
            continue
        if f == 2:  # one byte lost
            pos = rng.below(len(b))
            parts.append(b[:pos] + b[pos + 1 :])
            sent.append((b, False))
            continue
        if f == 3:  # HEX frame inside (not a fault)
            pos = 2 + rng.below(len(b) - 13)
            parts.append(b[:pos] + HEXF + b[pos:])
        elif f == 4:  # HEX frame between \r and \n (not a fault)
            parts.append(b[:1] + HEXF + b[1:])
        else:
            parts.append(b)
        sent.append((b, True))
    got = []
    p = vedirect.Parser(lambda blk: got.append(blk.raw()))
    stream = b"".join(parts)
    i = 0
    while i < len(stream):
        n = 1 + rng.below(300)
        p.feed(stream[i : i + n])
        i += n
    false_accepts = 0
    matched = 0
    j = 0
    for g in got:
        if g not in known:
            false_accepts += 1
            continue
        while j < len(sent) and not (sent[j][1] and sent[j][0] == g):
            j += 1
        if j < len(sent):
            matched += 1
            j += 1
    intact = 0
    for s in sent:
        if s[1]:
            intact += 1
    return {"sent": len(sent), "intact": intact, "lost": intact - matched, "false_accepts": false_accepts,
            "handed_out": len(got), "checksum_errors": p.checksum_errors, "malformed": p.malformed,
            "dup_labels": getattr(p, "dup_labels", 0), "resynced": p.resynced}
