# The flash log's way to the broker: every record (live or backlog) goes out
# from flash as a QoS 1 message carrying its sequence number, at most WINDOW
# in flight, and the upload cursor moves only over acknowledged records, so
# a record is lost only if the ring overwrites it before any broker took it.
#
#   window   [pid, seq, outcome] in publish order; outcome None while the
#            PUBACK is awaited, True once it came. Registered before a byte
#            goes out: on loopback the PUBACK can arrive before publish()
#            returns.
#   cursor   flashlog.mark_uploaded(seq) for the acknowledged prefix of the
#            window, persisted at most every MARK_EVERY_MS (flash wear).
#   resend   a negative outcome, or an entry whose packet the client no
#            longer holds (its outcome got lost), sends again from that seq;
#            consumers de-duplicate by seq.
#   clock    records stamped on the unset clock after power-on wait while it
#            is unset and go out converted by the clock's jump (timefix.py).
#   thin     (mqtt.uplink "thin") several records share one binary publish
#            (logpack.py), held up to mqtt.log_hold s for company.
#
# Time is passed in (ticks from lib/clock.py); the client is anything with
# publish(topic, body, qos=, pid_cb=) -> pid, is_connected(), in_flight(pid).
import binascii

from clock import ticks_diff, ticks_ms

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


WINDOW = const(8)  # QoS 1 log messages in flight at once
PER_S = const(20)  # backlog messages per second (rate limit on reconnect)
MARK_EVERY_MS = const(2000)  # persist the upload cursor at most this often
REC_EVENT = const(2)  # gateway.REC_EVENT: alarm events go on .../event as JSON


def log_message(base, seq, rtype, payload):
    """A flash-log record as an MQTT message carrying its sequence number:
    alarm events as JSON on .../event, binary minute blocks (records.py) as
    {"seq","type","hex"} on .../log (`vegw logs` decodes them)."""
    if rtype == REC_EVENT and payload[:1] == b"{":
        return base + "event", b'{"seq":%d,' % seq + payload[1:]
    return base + "log", b'{"seq":%d,"type":%d,"hex":"%s"}' % (seq, rtype, binascii.hexlify(payload))


class LogReplay:
    """flog: flashlog.FlashLog; base: "<prefix>/<gw>/"; thin: binary batches
    held up to hold_ms; clock_unset(): True while the board's clock is unset."""

    def __init__(self, flog, base, thin=False, hold_ms=0, clock_unset=None, log=None):
        self.flog = flog
        self.base = base
        self.thin = thin
        self.hold_ms = hold_ms
        self.clock_unset = clock_unset or (lambda: False)
        self._log = log or (lambda *a: None)
        self.window = []
        self.next_seq = 0  # next seq to send; 0: from the cursor
        self.stuck = 0  # entries whose outcome was lost (resent)
        self.draining = False  # a clean stop: nothing held back for company
        self.boot_seq = flog.next_seq  # first seq of this boot's records
        self.clock_delta = None  # the clock's jump, once it was set
        self._sec = 0
        self._sent_this_s = 0
        self._last_mark = 0
        self._pending_mark = None
        self._hold_since = None
        self._hold_seen = 0

    # ---- what goes out next
    def fixed(self, rec):
        """rec with a time stamped on the unset clock moved by the clock's
        jump (this boot's records only: an earlier boot's jump is unknown)."""
        d = self.clock_delta
        if d is None or rec[0] < self.boot_seq:
            return rec
        import timefix

        p = timefix.fix_record(rec[1], rec[2], d)
        return rec if p is rec[2] else (rec[0], rec[1], p)

    def next_record(self):
        if self.clock_unset():
            return None  # stamped on the unset clock: they wait, converted later
        fl = self.flog
        for rec in fl.read_from(self.next_seq or (fl.cursor + 1)):
            return self.fixed(rec)
        return None

    def thin_batch(self):
        """The next unsent records as one batch, or None while they may still
        wait for company (bytes on cellular); an alarm event, a full batch, a
        backlog and a clean stop go at once."""
        import logpack

        fl = self.flog
        if self.clock_unset():
            return None
        if (not self.draining and self._hold_since is not None and fl.next_seq == self._hold_seen
                and ticks_diff(ticks_ms(), self._hold_since) < self.hold_ms):
            return None  # nothing new, still holding: no flash read every 20 ms
        self._hold_seen = fl.next_seq
        batch = []
        size = 6
        urgent = self.draining
        for rec in fl.read_from(self.next_seq or (fl.cursor + 1)):
            rec = self.fixed(rec)
            n = logpack.size(len(rec[2]))
            if batch and (size + n > logpack.MAX_PAYLOAD or len(batch) >= logpack.MAX_RECORDS):
                urgent = True  # a full batch
                break
            batch.append(rec)
            size += n
            if rec[1] == REC_EVENT:
                urgent = True
        if not batch:
            self._hold_since = None
            return None
        now = ticks_ms()
        if self._hold_since is None:
            self._hold_since = now
        if not urgent and ticks_diff(now, self._hold_since) < self.hold_ms:
            return None
        self._hold_since = None
        return batch

    def idle(self):
        """Nothing in flight and nothing left to send."""
        return not self.window and self.next_record() is None

    # ---- sending
    async def send(self, client):
        """Publish what the window and the rate limit allow; call often."""
        if ticks_diff(ticks_ms(), self._sec) >= 1000:
            self._sec = ticks_ms()
            self._sent_this_s = 0
        while self._sent_this_s < PER_S and len(self.window) < WINDOW and client.is_connected():
            if self.thin:
                batch = self.thin_batch()
                if batch is None:
                    break
                import logpack

                seq = batch[-1][0]  # the window tracks a batch by its last seq
                topic, body = self.base + "log", logpack.pack(batch)
            else:
                rec = self.next_record()
                if rec is None:
                    break
                seq = rec[0]
                topic, body = log_message(self.base, rec[0], rec[1], rec[2])
            entry = [0, seq, None]
            self.window.append(entry)

            def _pid(p, e=entry):
                e[0] = p

            pid = await client.publish(topic, body, qos=1, pid_cb=_pid)
            if not pid:
                if entry in self.window and entry[2] is None:
                    self.window.remove(entry)
                break
            self.next_seq = seq + 1
            self._sent_this_s += 1
        self.check(client)
        self.persist(False)

    def on_puback(self, pid, ok):
        w = self.window
        for i in range(len(w)):
            if w[i][0] == pid:
                if ok:
                    w[i][2] = True
                    break
                # not acknowledged in time or the link dropped: keep what was
                # acknowledged before it, send again from it on
                self._resend_from(w[i])
                break

    def check(self, client):
        """An entry still waiting whose packet the client no longer holds
        lost its outcome: never let it wedge the window."""
        w = self.window
        for i in range(len(w)):
            e = w[i]
            if e[2] is None and e[0] and not client.in_flight(e[0]):
                self.stuck += 1
                self._log("log replay: no outcome for seq", e[1], "- resending from it")
                self._resend_from(e)
                return

    def _resend_from(self, e):
        # the acknowledged prefix leaves the window first (so e's index is
        # taken after it), then e and everything after it go out again,
        # starting right after the last acknowledged record
        self.persist(False)
        w = self.window
        if e in w:
            del w[w.index(e):]
        pm = self._pending_mark
        self.next_seq = pm + 1 if pm is not None else 0

    def persist(self, force):
        w = self.window
        last = None
        while w and w[0][2] is True:
            last = w.pop(0)[1]
        if last is not None:
            self._pending_mark = last
        pm = self._pending_mark
        if pm is not None and (force or ticks_diff(ticks_ms(), self._last_mark) >= MARK_EVERY_MS):
            self.flog.mark_uploaded(pm)
            self._pending_mark = None
            self._last_mark = ticks_ms()

    def disconnected(self):
        """The link ended: the acknowledged prefix is kept, the rest goes
        out again after the next connect."""
        self.persist(True)
        self.window = []
        self.next_seq = 0
