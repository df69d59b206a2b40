"""Per-gateway state shared by every `vegw bridge` instance: de-duplication
high-water mark, decoder context, records waiting for a missing one.

Why shared: MQTT shared subscriptions hand each message to one instance,
but a delta block of minutes (lib/records.py) decodes only after the blocks
before it back to its key frame, which another instance may have received.
So the instances meet in a state directory (one JSON file per gateway, held
under an exclusive flock while one of them works on that gateway):

    hwm      highest seq whose records are written (and every one before it)
    ctx      raw minute records from the last key frame up to hwm (decoder
             context: at most one hour of blocks, ~13 records)
    pending  records received above hwm that wait for a missing seq
    counters written, duplicates, gaps, orphans ...

process(gw, records, sink) adds what arrived, then walks seq by seq from
hwm + 1 while the next record is there, decodes each one with
cmd_logs.LogDecoder (the same code as `vegw logs`), hands the decoded
records to sink() (the InfluxDB write: raises on failure), and only then
moves hwm and saves the file (write to a temp file, fsync, rename). A crash
between the write and the save rewrites the same points, which InfluxDB
overwrites (same series, same time). A seq that never comes (a torn record
on the device, a reboot skipping seqs) is stepped over at once when the next
gap_timeout seconds (after a device reboot, say), and counted. A gateway
seen for the first time starts after gap_timeout too, at its oldest record
received by then.

A message may be acknowledged to the broker once process() returned: its
records are then written or safely in `pending` on disk for whichever
instance completes the chain (or for the retry timer).
"""
import fcntl
import json
import os
import re
import time

from . import LIB  # noqa: F401  (puts firmware/lib on sys.path)
from .cmd_logs import LogDecoder

T_BOOT = 0  # lib/flashlog.py: the log's own boot marker
T_EVENT_JSON = 2  # lib/gateway.py REC_EVENT
T_KEY = 16  # lib/records.py
T_DELTA = 17


def _fname(gw):
    return re.sub(r"[^A-Za-z0-9_.-]", lambda m: "%%%02X" % ord(m.group()), gw) or "%"


class Result:
    """What one process() call did."""

    def __init__(self):
        self.records = []  # decoded export records written (cmd_logs shape), seq order
        self.events = []  # (seq, JSON bytes of the event) for records of type 2
        self.written = 0  # log records (seqs) completed
        self.duplicates = 0
        self.waiting = 0  # records left pending (a seq before them is missing)


class Store:
    def __init__(self, directory, gap_timeout=60.0, clock=time.time):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.gap_timeout = gap_timeout
        self.clock = clock

    def path(self, gw):
        return os.path.join(self.dir, _fname(gw) + ".json")

    def gateways(self):
        """Gateways with a state file (for the retry timer)."""
        out = []
        for n in os.listdir(self.dir):
            if n.endswith(".json"):
                try:
                    with open(os.path.join(self.dir, n)) as f:
                        g = json.load(f).get("gateway")
                except (OSError, ValueError):
                    continue
                if isinstance(g, str):
                    out.append(g)
        return out

    def _load(self, gw):
        try:
            with open(self.path(gw)) as f:
                st = json.load(f)
        except FileNotFoundError:
            st = None
        if not isinstance(st, dict) or st.get("gateway") != gw:
            st = {"gateway": gw, "hwm": None, "ctx": [], "pending": {}, "counters": {}}
        return st

    def _save(self, gw, st):
        p = self.path(gw)
        tmp = p + ".tmp"
        with open(tmp, "w") as f:
            json.dump(st, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)

    def state(self, gw):
        """A copy of the saved state (tests, status)."""
        return self._load(gw)

    def process(self, gw, records, sink):
        """records: [(seq, type, payload bytes)] of one message (may be []).
        sink(decoded records) writes them and raises on failure; then the
        records stay pending (saved) and the exception propagates."""
        lock = open(self.path(gw) + ".lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            st = self._load(gw)
            res = Result()
            now = self.clock()
            cnt = st["counters"]
            pend = st["pending"]
            hwm = st["hwm"]
            for seq, rtype, payload in records:
                if (hwm is not None and seq <= hwm) or str(seq) in pend:
                    res.duplicates += 1
                    continue
                pend[str(seq)] = [rtype, bytes(payload).hex(), now]
            cnt["duplicates"] = cnt.get("duplicates", 0) + res.duplicates
            done = []
            ctx = list(st["ctx"])
            while pend:
                nxt = None if hwm is None else hwm + 1
                if nxt is not None and str(nxt) in pend:
                    seq = nxt
                else:
                    # The missing seq may still come: another instance may hold it,
                    # or the device resends it. Even a key frame or a boot marker
                    # next in line waits: the record before it (a minute block,
                    # an event) must not be dropped as a duplicate afterwards.
                    # So does a gateway's first record (hwm None): an older one
                    # may be in flight at another instance.
                    first = min(int(k) for k in pend)
                    waited = now - min(v[2] for v in pend.values())
                    if waited < self.gap_timeout:
                        break
                    if hwm is not None:
                        cnt["gaps"] = cnt.get("gaps", 0) + 1
                        cnt["missing"] = cnt.get("missing", 0) + first - hwm - 1
                    seq = first
                rtype, hexp, _ = pend.pop(str(seq))
                done.append((seq, rtype, hexp))
                if rtype == T_KEY:
                    ctx = [[seq, rtype, hexp]]
                elif rtype == T_DELTA:
                    ctx.append([seq, rtype, hexp])
                elif rtype == T_BOOT:
                    ctx = []  # a reboot: the next minute block is a key frame
                hwm = seq
            if done:
                res.records = self._decode(st["ctx"], done, cnt)
                for seq, rtype, hexp in done:
                    p = bytes.fromhex(hexp)
                    if rtype == T_EVENT_JSON and p[:1] == b"{":
                        res.events.append((seq, b'{"seq":%d,' % seq + p[1:]))
                try:
                    sink(res.records)
                except Exception:
                    for seq, rtype, hexp in done:  # back to pending, saved: a later call retries
                        pend[str(seq)] = [rtype, hexp, now]
                    self._save(gw, st)
                    raise
                st["hwm"] = hwm
                st["ctx"] = ctx
                res.written = len(done)
                cnt["written"] = cnt.get("written", 0) + len(done)
            res.waiting = len(pend)
            self._save(gw, st)
            return res
        finally:
            lock.close()  # releases the flock

    @staticmethod
    def _decode(ctx, done, cnt):
        """Decode the completed records; minute blocks after the context."""
        dec = LogDecoder()
        for seq, rtype, hexp in ctx:
            dec.feed(seq, rtype, bytes.fromhex(hexp))  # rebuilds the decoder state only
        out = []
        for seq, rtype, hexp in done:
            got = dec.feed(seq, rtype, bytes.fromhex(hexp))
            if not got and rtype in (T_KEY, T_DELTA):
                cnt["undecodable"] = cnt.get("undecodable", 0) + 1  # no key frame before it, or malformed
            out.extend(got)
        return out
