# Alarm engine: evaluates compiled rules (alarm_rules.py) against the latest
# decoded values of each device, in caller-supplied time (seconds; ints on the
# board, any number on the host), and emits events.
#
# Semantics (issue 11, exactly):
# - update(device, values, now) stores the device's latest values and marks it
#   fresh until now + its stale timeout (60 s default). A value not in a block
#   keeps its last value (BMVs alternate a main and a history block).
# - A device is stale once now > last block + timeout (a device, or a log
#   export, sending every 60 s stays fresh at the default). While any value a
#   condition reads is stale, missing, null or not a number, the condition is
#   unknown: the rule neither raises nor clears and its running for/after timer
#   restarts. A timer therefore only counts time covered by fresh data: in
#   tick() a deadline that falls at or before the moment the data went stale
#   still fires (at the tick's time), one after it restarts the timer.
# - Raise when CONDITION has held for `for` (at once without). Clear when the
#   clear condition has held for `after` (at once without); no `clear` means
#   "CONDITION no longer holds"; `latch` clears only on acknowledge().
# - A rule re-evaluates only when a value it reads changes or one of its
#   devices turns fresh again; tick() runs the timers.
#
# Hot path: update() allocates nothing in steady state with integer times
# (slots in a list, flags in bytearrays, a preallocated RPN stack); events and
# timer starts allocate (a dict, a float deadline on the host).
#
# Length: one evaluator (rule timers, staleness, built-in device events,
# snapshot) whose semantics, written above, tie them together; the rule
# language is alarm_rules.py, what happens to a decided event (flapping
# limit, relay output, the event box) alarm_outputs.py.
import sys

import alarm_outputs
from alarm_outputs import AlarmOutputs

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAX_RULES = const(64)  # rules beyond this are dropped at load (counted in stats)
_MAX_DEVICES = const(16)  # blocks from further unknown devices are dropped (counted)
_MAX_EVENTS = const(32)  # outbox ring when no callback is given; oldest dropped (counted)
_STACK = const(40)  # RPN stack depth; alarm_rules caps a condition at 32 comparisons

_IDLE = const(0)
_RAISED = const(1)
_NEVER = float("-inf")  # stale_at of a device that never sent a block

# severities: alarm_outputs.py holds them (the events name them)
SEV_INFO = alarm_outputs.SEV_INFO
SEV_WARNING = alarm_outputs.SEV_WARNING
SEV_ALARM = alarm_outputs.SEV_ALARM

BUILTINS = ("stale", "error", "device_alarm")


def _enum_text(table, code, bits):
    # Names for a built-in event (rare): ve_enums is loaded for the call and,
    # on MicroPython, dropped again when nothing else had it loaded (RAM).
    had = "ve_enums" in sys.modules
    import ve_enums

    t = getattr(ve_enums, table)
    out = ve_enums.bit_names(t, code) if bits else ve_enums.name(t, code)
    if not had and sys.implementation.name == "micropython":
        sys.modules.pop("ve_enums", None)
    return out


def _int_if_whole(x):
    try:
        if type(x) is float and x == int(x):
            return int(x)
    except (OverflowError, ValueError):  # inf, nan
        pass
    return x


class Engine(AlarmOutputs):
    """Rule engine. Public API:

    Engine(rules, on_event=None, stale_s=60, stale_by_device=None, builtin=None,
           devices=None, on_output=None, output_severity=2, flap_max=10,
           flap_window=3600, ble_devices=None)
    on_output(name, severity, on): called when the local output (relay, buzzer)
    must change: on while any rule of at least output_severity is raised and
    not acknowledged; name/severity are those of the rule that switched it.
    ble_devices: names of devices read over BLE. Instant Readout has no MAC
    (anyone in radio range who saw one advert can forge values), so a rule
    that reads one of them, and their built-in alarms, drive the output only
    with `allow_ble` in the rule; the events go out all the same.
    update(device, values, now)   feed one decoded block
    tick(now)                     run timers and stale detection (call ~1/s)
    acknowledge(name, now) -> bool
    events() -> list              drain the outbox (when on_event is None)
    active() -> list of names     raised rules
    stats() -> dict               counters
    """

    def __init__(self, rules, on_event=None, stale_s=60, stale_by_device=None, builtin=None,
                 devices=None, on_output=None, output_severity=SEV_ALARM, flap_max=10, flap_window=3600,
                 ble_devices=None):
        AlarmOutputs.__init__(self, on_event, on_output, output_severity, flap_max, flap_window, _MAX_EVENTS)
        # integral timeouts as ints: now (int seconds on the board) + a float
        # would be a float32 with a 64 s resolution at today's epoch
        self.stale_s = _int_if_whole(stale_s)
        self.stale_by_device = {}
        if stale_by_device:
            for k in stale_by_device:
                self.stale_by_device[k] = _int_if_whole(stale_by_device[k])
        b = {"stale": True, "error": True, "device_alarm": True}
        if isinstance(builtin, dict):
            for k in builtin:
                b[k] = bool(builtin[k])
        self._b_stale = b["stale"]
        self._b_error = b["error"]
        self._b_alarm = b["device_alarm"]
        self.dropped_rules = 0
        self.dropped_devices = 0
        self._t0 = None
        # devices
        self._dname = []
        self._didx = {}
        self._stale_at = []
        self._stale_flag = bytearray(_MAX_DEVICES)
        self._seen = bytearray(_MAX_DEVICES)
        self._watch = []  # per device: list of (field, slot, rule indices)
        self._drules = []  # per device: tuple of rule indices reading it
        self._bstate = []  # per device: [err, AR, Alarm, WARN, alarm_state, error_on, alarm_on, warn_on]
        # slots
        self._vals = []
        self._slot_name = []
        self._stack = [False] * _STACK
        # rules
        rules = list(rules)
        if len(rules) > _MAX_RULES:
            self.dropped_rules = len(rules) - _MAX_RULES
            rules = rules[:_MAX_RULES]
        n = len(rules)
        self._rules = rules
        self._rindex = {}
        self._cond = []
        self._clear = []
        self._cslots = []
        self._cdevs = []
        self._kslots = []
        self._kdevs = []
        self._state = bytearray(n)
        self._dirty = bytearray(n)
        self._recheck = bytearray(n)
        self._acked = bytearray(n)
        self._deadline = [None] * n
        self._ble = tuple(ble_devices or ())
        if devices:
            for d in devices:
                self._device(d)
        slot_of = {}
        watch = []  # (dev, field, slot, rule) while building
        for r in range(n):
            rule = rules[r]
            self._rindex[rule[0]] = r
            cond = self._link(rule[2], slot_of, watch, r)
            self._cond.append(cond)
            self._cslots.append(self._prog_slots(cond))
            self._cdevs.append(self._prog_devs(cond))
            if rule[4] is None:
                self._clear.append(None)
                self._kslots.append(self._cslots[r])
                self._kdevs.append(self._cdevs[r])
            else:
                clr = self._link(rule[4], slot_of, watch, r)
                self._clear.append(clr)
                self._kslots.append(self._prog_slots(clr))
                self._kdevs.append(self._prog_devs(clr))
        for d in range(len(self._dname)):
            fields = []
            drules = []
            for dev, field, slot, r in watch:
                if dev != d:
                    continue
                if r not in drules:
                    drules.append(r)
                found = None
                for f in fields:
                    if f[1] == slot:
                        found = f
                if found is None:
                    fields.append([field, slot, [r]])
                elif r not in found[2]:
                    found[2].append(r)
            self._watch[d] = tuple((f[0], f[1], tuple(f[2])) for f in fields)
            drules.sort()
            self._drules[d] = tuple(drules)
        # per rule: 1 if it may drive the output (reads no BLE device, or says
        # allow_ble; a rule cached by an older build has no such element)
        self._out_ok = bytearray(n)
        for r in range(n):
            rule = rules[r]
            ok = len(rule) > 8 and rule[7] is True
            if not ok:
                ok = True
                for d in self._cdevs[r] + self._kdevs[r]:
                    if d >= 0 and self._dname[d] in self._ble:
                        ok = False
            self._out_ok[r] = 1 if ok else 0

    def add_device(self, name):
        """Watch a configured device for the built-in stale alarm even if no
        rule reads it: never heard within its timeout after the first tick
        raises stale:NAME like a device gone silent."""
        self._device(name)

    def reads(self, device, field):
        """True if a rule reads this field of this device."""
        d = self._didx.get(device)
        if d is not None:
            for w in self._watch[d]:
                if w[0] == field:
                    return True
        return False

    # ---- construction helpers
    def _device(self, name):
        d = self._didx.get(name)
        if d is not None:
            return d
        if len(self._dname) >= _MAX_DEVICES:
            self.dropped_devices += 1
            return None
        d = len(self._dname)
        self._dname.append(name)
        self._didx[name] = d
        self._stale_at.append(_NEVER)
        self._watch.append(())
        self._drules.append(())
        self._bstate.append([None, None, None, None, None, False, False, False])
        return d

    def _slot(self, ref, slot_of, watch, r):
        key = ref[0] + "." + ref[1]
        s = slot_of.get(key)
        d = self._device(ref[0])
        if s is None:
            s = len(self._vals)
            slot_of[key] = s
            self._vals.append(None)
            self._slot_name.append((key, d))
        if d is not None:
            watch.append((d, ref[1], s, r))
        return s

    def _link(self, prog, slot_of, watch, r):
        out = []
        for op, a, b, b_ref in prog:
            if op <= 5:
                a = self._slot(a, slot_of, watch, r)
                if b_ref:
                    b = self._slot(b, slot_of, watch, r)
            out.append((op, a, b, b_ref))
        return tuple(out)

    def _prog_slots(self, prog):
        out = []
        for op, a, b, b_ref in prog:
            if op <= 5:
                if a not in out:
                    out.append(a)
                if b_ref and b not in out:
                    out.append(b)
        return tuple(out)

    def _prog_devs(self, prog):
        out = []
        for s in self._prog_slots(prog):
            d = self._slot_name[s][1]
            if d is None:
                d = -1  # a device beyond _MAX_DEVICES: its values never arrive
            if d not in out:
                out.append(d)
        return tuple(out)

    # ---- evaluation
    def _known(self, slots, devs, now):
        sa = self._stale_at
        for d in devs:
            if d < 0 or now > sa[d]:
                return False
        vals = self._vals
        for s in slots:
            if vals[s] is None:
                return False
        return True

    def _run(self, prog):
        st = self._stack
        vals = self._vals
        sp = 0
        for ins in prog:
            op = ins[0]
            if op <= 5:
                a = vals[ins[1]]
                b = vals[ins[2]] if ins[3] else ins[2]
                if op == 0:
                    v = a < b
                elif op == 1:
                    v = a <= b
                elif op == 2:
                    v = a > b
                elif op == 3:
                    v = a >= b
                elif op == 4:
                    v = a == b
                else:
                    v = a != b
                st[sp] = v
                sp += 1
            elif op == 8:
                st[sp - 1] = not st[sp - 1]
            else:
                sp -= 1
                if op == 6:
                    st[sp - 1] = st[sp - 1] and st[sp]
                else:
                    st[sp - 1] = st[sp - 1] or st[sp]
        return st[0]

    def _eval(self, r, now):
        self._dirty[r] = 0
        self._recheck[r] = 0
        rule = self._rules[r]
        if self._state[r] == _IDLE:
            if not self._known(self._cslots[r], self._cdevs[r], now) or not self._run(self._cond[r]):
                self._deadline[r] = None
                return
            if rule[3] == 0:
                self._raise(r, now)
                return
            dl = self._deadline[r]
            if dl is None:
                self._deadline[r] = now + rule[3]
            elif now >= dl:
                self._raise(r, now)
            return
        if rule[6]:
            return  # latched: only acknowledge() clears
        if not self._known(self._kslots[r], self._kdevs[r], now):
            self._deadline[r] = None
            return
        clr = self._clear[r]
        held = (not self._run(self._cond[r])) if clr is None else self._run(clr)
        if not held:
            self._deadline[r] = None
            return
        if rule[5] == 0:
            self._clear_rule(r, now)
            return
        dl = self._deadline[r]
        if dl is None:
            self._deadline[r] = now + rule[5]
        elif now >= dl:
            self._clear_rule(r, now)

    def _fresh_until(self, devs):
        sa = self._stale_at
        m = None
        for d in devs:
            if d < 0:
                return _NEVER
            if m is None or sa[d] < m:
                m = sa[d]
        return m

    def _raise(self, r, now):
        self._state[r] = _RAISED
        self._deadline[r] = None
        self._acked[r] = 0
        rule = self._rules[r]
        self._emit(now, rule[0], "raised", rule[1], self._snapshot(self._cslots[r]))

    def _clear_rule(self, r, now):
        self._state[r] = _IDLE
        self._deadline[r] = None
        self._acked[r] = 0
        self._recheck[r] = 1  # a CONDITION still true may raise again at the next tick
        rule = self._rules[r]
        self._emit(now, rule[0], "cleared", rule[1], self._snapshot(self._kslots[r]))

    def _snapshot(self, slots):
        out = {}
        for s in slots:
            out[self._slot_name[s][0]] = self._vals[s]
        return out

    # ---- public API
    def update(self, device, values, now):
        """Feed one decoded block (field -> value) of `device` at time `now` (s)."""
        if self._t0 is None:
            self._t0 = now
        d = self._didx.get(device)
        if d is None:
            if type(device) is not str or type(values) is not dict:
                self.dropped_devices += 1
                return
            d = self._device(device)
            if d is None:
                return
        timeout = self.stale_by_device.get(device, self.stale_s) if self.stale_by_device else self.stale_s
        was_stale = now > self._stale_at[d]
        self._stale_at[d] = now + timeout
        self._seen[d] = 1
        dirty = self._dirty
        if was_stale:
            # back from stale (or first block): timers restart, rules re-evaluate
            dl = self._deadline
            for r in self._drules[d]:
                dirty[r] = 1
                dl[r] = None
            if self._stale_flag[d]:
                self._stale_flag[d] = 0
                self._emit(now, "stale:" + device, "cleared", SEV_WARNING, None)
        vals = self._vals
        miss = self
        for field, slot, rs in self._watch[d]:
            v = values.get(field, miss)
            if v is miss:
                continue
            t = type(v)
            if t is not int and t is not float and t is not bool:
                v = None
            if v != vals[slot]:
                vals[slot] = v
                for r in rs:
                    dirty[r] = 1
        if self._b_error or self._b_alarm:
            self._builtins(d, device, values, now)
        for r in self._drules[d]:
            if dirty[r]:
                self._eval(r, now)

    def _builtins(self, d, device, values, now):
        bs = self._bstate[d]
        changed = False
        miss = self
        i = 0
        for key in ("ERR", "AR", "Alarm", "WARN", "alarm_state"):
            v = values.get(key, miss)
            if v is not miss and v != bs[i]:
                bs[i] = v
                changed = True
            i += 1
        if not changed:
            return
        if self._b_error:
            on = bool(bs[0])  # ERR != 0 (null = not available)
            if on != bs[5]:
                bs[5] = on
                self._emit(now, "error:" + device, "raised" if on else "cleared", SEV_ALARM,
                           {"ERR": bs[0], "name": _enum_text("CHARGER_ERROR", bs[0], False)})
        if self._b_alarm:
            on = bool(bs[1]) or bs[2] is True or bs[4] == 2
            if on != bs[6]:
                bs[6] = on
                self._emit(now, "device_alarm:" + device, "raised" if on else "cleared", SEV_ALARM,
                           {"AR": bs[1], "Alarm": bs[2], "alarm_state": bs[4],
                            "reasons": _enum_text("ALARM_REASON_BITS", bs[1], True) if type(bs[1]) is int else None})
            on = bool(bs[3]) or bs[4] == 1
            if on != bs[7]:
                bs[7] = on
                self._emit(now, "device_warning:" + device, "raised" if on else "cleared", SEV_WARNING,
                           {"WARN": bs[3], "alarm_state": bs[4],
                            "reasons": _enum_text("ALARM_REASON_BITS", bs[3], True) if type(bs[3]) is int else None})

    def tick(self, now):
        """Stale detection and duration timers at time `now`."""
        if self._t0 is None:
            self._t0 = now
        if self._b_stale:
            for d in range(len(self._dname)):
                if self._stale_flag[d]:
                    continue
                if self._seen[d]:
                    stale = now > self._stale_at[d]
                else:
                    stale = now - self._t0 > self.stale_by_device.get(self._dname[d], self.stale_s)
                if stale:
                    self._stale_flag[d] = 1
                    self._emit(now, "stale:" + self._dname[d], "raised", SEV_WARNING, None)
        for r in range(len(self._rules)):
            dl = self._deadline[r]
            if dl is not None:
                idle = self._state[r] == _IDLE
                fu = self._fresh_until(self._cdevs[r] if idle else self._kdevs[r])
                if now >= dl and dl <= fu:
                    if idle:
                        self._raise(r, now)
                    else:
                        self._clear_rule(r, now)
                elif now > fu:
                    self._deadline[r] = None  # data went stale before the duration ran out
            if self._recheck[r]:
                self._eval(r, now)
        self._flap_tick(now)

    def acknowledge(self, name, now):
        """Acknowledge a raised rule. A latched rule clears; others stay raised.
        Returns False when no such rule is raised."""
        r = self._rindex.get(name)
        if r is None:
            if type(name) is str and name in self.active():
                # a raised built-in rule: silence the output; it clears by itself
                sev = SEV_WARNING if name[:6] == "stale:" or name[:15] == "device_warning:" else SEV_ALARM
                self._emit(now, name, "acknowledged", sev, None)
                self._output(name, sev, False)
                return True
            return False
        if self._state[r] != _RAISED:
            return False
        rule = self._rules[r]
        self._acked[r] = 1
        self._emit(now, name, "acknowledged", rule[1], None)
        if rule[6]:
            self._clear_rule(r, now)
        else:
            self._output(name, rule[1], False)
        return True

    def active(self):
        out = []
        for r in range(len(self._rules)):
            if self._state[r] == _RAISED:
                out.append(self._rules[r][0])
        for d in range(len(self._dname)):
            n = self._dname[d]
            if self._stale_flag[d]:
                out.append("stale:" + n)
            bs = self._bstate[d]
            if bs[5]:
                out.append("error:" + n)
            if bs[6]:
                out.append("device_alarm:" + n)
            if bs[7]:
                out.append("device_warning:" + n)
        return out

    def clock_set(self, delta):
        """The clock jumped by delta (set after power-on): move the times held
        on the unset clock, so no duration ends or stale timer fires at once."""
        from timefix import shift

        self._t0 = shift(self._t0, delta)
        sa = self._stale_at
        for d in range(len(sa)):
            if sa[d] != _NEVER:
                sa[d] = shift(sa[d], delta)
        dl = self._deadline
        for r in range(len(dl)):
            dl[r] = shift(dl[r], delta)
        for f in self._flap.values():
            f[0] = shift(f[0], delta)
            f[2] = shift(f[2], delta)

    def snapshot(self):
        """The raised rules (built-in ones too) and which are acknowledged,
        for a planned restart: restore() takes them back without raising
        them again (no second "raised" event, the relay as it was)."""
        acked = []
        for r in range(len(self._rules)):
            if self._state[r] == _RAISED and self._acked[r]:
                acked.append(self._rules[r][0])
        return {"raised": self.active(), "acked": acked}

    def restore(self, snap, now):
        """Take back a snapshot() (a dict as JSON gives it). Unknown names are
        skipped; never raises on a bad snapshot."""
        try:
            raised = snap.get("raised") or ()
            acked = snap.get("acked") or ()
        except AttributeError:
            return 0
        n = 0
        for name in raised:
            if type(name) is not str:
                continue
            r = self._rindex.get(name)
            if r is not None:
                self._state[r] = _RAISED
                self._acked[r] = 1 if name in acked else 0
                sev = self._rules[r][1]
                if not self._acked[r]:
                    self._output(name, sev, True)
            else:
                i = name.find(":")
                d = self._didx.get(name[i + 1:]) if i > 0 else None
                if d is None:
                    continue
                kind = name[:i]
                bs = self._bstate[d]
                sev = SEV_ALARM
                if kind == "stale":
                    self._stale_flag[d] = 1
                    sev = SEV_WARNING
                elif kind == "error":
                    bs[5] = True
                elif kind == "device_alarm":
                    bs[6] = True
                elif kind == "device_warning":
                    bs[7] = True
                    sev = SEV_WARNING
                else:
                    continue
                self._output(name, sev, True)
            self._flap[name] = [now, 0, None, "raised"]
            n += 1
        return n

    def stats(self):
        return {"events": self.events_emitted, "dropped_events": self.dropped_events,
                "suppressed": self.suppressed, "dropped_rules": self.dropped_rules,
                "dropped_devices": self.dropped_devices, "rules": len(self._rules),
                "output_refused": self.output_refused}
