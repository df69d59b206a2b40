# What the alarm engine (alarm_engine.py) does with a raise, clear or
# acknowledge once it is decided: the flapping limit per rule, the relay
# output (which rules may drive it, and when it switches), and the event
# going out (a callback, or a bounded box drained with events()).
# AlarmOutputs is a base of alarm_engine.Engine and reads its rules
# (_rules, _rindex, _out_ok), its BLE devices (_ble) and active().
from ring import Ring

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


# same order as alarm_rules.SEVERITIES; kept here so the parser can leave RAM
# once the rules are compiled (the engine needs only their compiled form)
_SEVERITIES = ("info", "warning", "alarm")
SEV_INFO = const(0)
SEV_WARNING = const(1)
SEV_ALARM = const(2)


class AlarmOutputs:
    # the engine's, read here
    _rules: list
    _rindex: dict
    _out_ok: bytearray
    _ble: tuple

    def __init__(self, on_event, on_output, output_severity, flap_max, flap_window, max_events):
        self.on_event = on_event
        self.on_output = on_output
        self.output_severity = output_severity
        self.flap_max = flap_max
        self.flap_window = flap_window
        self.dropped_events = 0
        self.suppressed = 0
        self.events_emitted = 0
        self._box = Ring(max_events)  # events when no on_event callback was given
        # name -> [window start, raises in window, suppressed since (or None), last published event];
        # bounded: one entry per rule and per built-in rule of each device
        self._flap = {}
        self._out_on = False
        self._out_set = []
        self.output_refused = 0  # raises kept off the output: they read a BLE device

    def active(self):
        """The raised rules' names (the engine's)."""
        raise NotImplementedError

    def events(self):
        """Drain the outbox (used when no on_event callback was given)."""
        out = []
        while len(self._box):
            out.append(self._box.pop())
        return out

    def _emit(self, now, name, kind, sev, values):
        # Flapping limit per rule name: more than flap_max raises inside one
        # flap_window starts a suppression (one visible "suppressed" event, then
        # raised/cleared events only counted in self.suppressed) that lasts a
        # whole window; _flap_tick then publishes the state if it changed.
        if kind != "acknowledged":
            f = self._flap.get(name)
            if f is None:
                f = self._flap[name] = [now, 0, None, None]  # window start, raises, suppressed since, last published
            if kind == "raised" and f[2] is None:
                if now - f[0] >= self.flap_window:
                    f[0] = now
                    f[1] = 0
                f[1] += 1
                if self.flap_max and f[1] > self.flap_max:
                    f[2] = now
                    self._push({"t": now, "rule": name, "event": "suppressed", "severity": _SEVERITIES[sev],
                                "values": {"raises": f[1] - 1, "window": self.flap_window}})
            if f[2] is not None:
                self.suppressed += 1
                return
            f[3] = kind
            self._output(name, sev, kind == "raised")
        self._push({"t": now, "rule": name, "event": kind, "severity": _SEVERITIES[sev], "values": values})

    def _flap_tick(self, now):
        if not self.suppressed:
            return  # nothing was ever suppressed: keep tick() cheap
        for name in self._flap:
            f = self._flap[name]
            if f[2] is not None and now - f[2] >= self.flap_window:
                f[2] = None
                f[0] = now
                f[1] = 0
                cur = "raised" if name in self.active() else "cleared"
                if cur != f[3]:
                    r = self._rindex.get(name)
                    sev = self._rules[r][1] if r is not None else (SEV_WARNING if name[:6] == "stale:" else SEV_ALARM)
                    f[3] = cur
                    self._output(name, sev, cur == "raised")
                    self._push({"t": now, "rule": name, "event": cur, "severity": _SEVERITIES[sev],
                                "values": None})

    def _may_drive(self, name):
        r = self._rindex.get(name)
        if r is not None:
            return self._out_ok[r] == 1
        # a built-in: "stale:DEV", "error:DEV", ...
        i = name.find(":")
        return name[i + 1:] not in self._ble

    def _output(self, name, sev, on):
        if self.on_output is None:
            return
        if on and sev >= self.output_severity and not self._may_drive(name):
            self.output_refused += 1
            return
        if on and sev >= self.output_severity:
            if name not in self._out_set:
                self._out_set.append(name)
        elif name in self._out_set:
            self._out_set.remove(name)
        want = len(self._out_set) > 0
        if want != self._out_on:
            self._out_on = want
            # the rule whose event switched the output, and the output's new state
            self.on_output(name, _SEVERITIES[sev], want)

    def _push(self, ev):
        self.events_emitted += 1
        if self.on_event is not None:
            self.on_event(ev)
            return
        if self._box.put(ev) is not None:
            self.dropped_events += 1
