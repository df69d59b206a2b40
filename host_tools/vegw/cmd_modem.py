"""`vegw modem`: run the firmware's modem dialogue (firmware/lib/at_modem.py)
against a modem on this computer.

    vegw modem probe  --port PORT [--model M] [--pin PIN] [--apn APN] [--timeout S]
    vegw modem signal --port PORT --seconds N [--interval S] [--live]

PORT is a serial device (/dev/ttyUSB2, COM5; a USB modem's AT port) or
`tcp:HOST:PORT` (a modem behind a serial-to-TCP bridge, or `vegw.modem_sim`).

probe prints one JSON object: {"model", "sim", "registered", "operator",
"tech", "rssi_dbm", "data", ...} and exits 0 when registered (and, with --apn,
connected), 1 otherwise. It never runs longer than --timeout: the dialogue has
its own deadline, asyncio.wait_for wraps it, and a watchdog thread prints what
is known and ends the process if both fail.
"""
import asyncio
import json
import os
import sys
import threading
import time

_T0 = time.monotonic()  # the budget starts when the process imported us

MODELS = ("sim7600", "sim7080", "a7670")


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    p = sub.add_parser("probe", help="SIM, registration, operator, signal and (with --apn) a data call")
    _common(p, 60.0)
    p.add_argument("--pin", default=None, help="SIM PIN; sent at most once, never when the SIM wants its PUK")
    p.add_argument("--apn", default=None, help="APN; when given, dial ATD*99# and expect CONNECT")
    p.add_argument("--user", default="", help="APN user name")
    p.add_argument("--password", default="", help="APN password")
    s = sub.add_parser("signal", help="sample signal quality for N seconds: min/avg/max dBm (antenna commissioning)")
    _common(s, None)
    s.add_argument("--seconds", type=float, default=30.0, help="how long to sample (default 30)")
    s.add_argument("--interval", type=float, default=1.0, help="seconds between samples (default 1)")
    s.add_argument("--live", action="store_true", help="print each sample on stderr as it comes")


def _common(p, default_timeout):
    # --port: one name for a serial port in every command; --modem still works
    p.add_argument("--port", "--modem", dest="modem", required=True, metavar="PORT",
                   help="serial device or tcp:HOST:PORT (also accepted as --modem)")
    p.add_argument("--model", choices=MODELS, default=None, help="modem model (default: detect with AT+CGMM)")
    p.add_argument("--baud", type=int, default=115200, help="serial baud rate (default 115200)")
    p.add_argument("--timeout", type=float, default=default_timeout,
                   help="give up after this many seconds (default %s)" % (default_timeout or "seconds + 30"))


def _fail(msg):
    sys.stderr.write("vegw modem: %s\n" % msg)
    return 2


class SerialStream:
    """The at_modem stream interface over pyserial, polled without blocking."""

    def __init__(self, ser):
        self.ser = ser

    async def read(self, n):
        while True:
            waiting = self.ser.in_waiting
            if waiting:
                return self.ser.read(min(n, waiting))
            await asyncio.sleep(0.01)

    async def write(self, data):
        self.ser.write(data)

    def close(self):
        try:
            self.ser.close()
        except Exception:  # noqa: BLE001 - closing a vanished USB device
            pass


class TcpStream:
    def __init__(self, reader, writer):
        self.r = reader
        self.w = writer

    async def read(self, n):
        try:
            return await self.r.read(n)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data):
        self.w.write(data)
        await self.w.drain()

    def close(self):
        try:
            self.w.close()
        except Exception:  # noqa: BLE001
            pass


def parse_port(spec):
    """("tcp", host, port) or ("serial", device, None); ValueError if malformed."""
    if spec.startswith("tcp:"):
        rest = spec[4:]
        host, sep, port = rest.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected tcp:HOST:PORT, got %r" % spec)
        return "tcp", host.strip("[]"), int(port)
    if not spec:
        raise ValueError("empty port")
    return "serial", spec, None


async def _open(kind, where, port, baud, timeout):
    if kind == "tcp":
        reader, writer = await asyncio.wait_for(asyncio.open_connection(where, port), timeout)
        return TcpStream(reader, writer)
    import serial  # pyserial

    ser = serial.Serial(where, baudrate=baud, timeout=0, write_timeout=2)
    return SerialStream(ser)


class _Watchdog:
    """Last resort: print what is known and end the process at the deadline."""

    def __init__(self, seconds, emit):
        self.done = threading.Lock()
        self.emitted = False
        self.emit = emit
        self.timer = threading.Timer(max(0.05, seconds), self._fire)
        self.timer.daemon = True
        self.timer.start()

    def once(self, *a):
        with self.done:
            if self.emitted:
                return False
            self.emitted = True
        self.timer.cancel()
        self.emit(*a)
        return True

    def _fire(self):
        if self.once(True):
            sys.stdout.flush()
            os._exit(1)


def run(args):
    action = getattr(args, "action", None)
    if action not in ("probe", "signal"):
        return _fail("choose an action: probe or signal (see vegw modem --help)")
    try:
        kind, where, port = parse_port(args.modem)
    except ValueError as e:
        return _fail(str(e))
    if action == "signal":
        if not args.seconds > 0 or args.seconds > 86400:
            return _fail("--seconds must be between 0 and 86400")
        if not args.interval > 0:
            return _fail("--interval must be positive")
        if args.timeout is None:
            args.timeout = args.seconds + 30
    if not args.timeout or not 0 < args.timeout <= 86400:
        return _fail("--timeout must be between 0 and 86400 seconds")
    if action == "probe" and args.pin is not None and not (args.pin.isdigit() and 4 <= len(args.pin) <= 8):
        return _fail("--pin must be 4 to 8 digits (a malformed PIN would still cost one of the SIM's tries)")
    if action == "probe" and args.apn is not None and ('"' in args.apn or not args.apn.strip()):
        return _fail("--apn must be a non-empty name without quotes")
    try:
        import at_modem  # firmware/lib, put on sys.path by the vegw package
    except ImportError as e:
        return _fail("firmware library not found (%s)" % e)

    # The budget counts from process start; keep margins for printing and exit.
    budget = args.timeout - (time.monotonic() - _T0)
    state = {"modem": None, "out": None}

    def emit(timed_out=False):
        m = state["modem"]
        if action == "probe":
            out = dict(m.result) if m is not None else at_modem.new_result(args.model)
            if state.get("err"):
                out["error"] = state["err"]
            if timed_out and out.get("error") is None:
                out["error"] = "timeout"
            out["port"] = args.modem
            state["out"] = out
        else:
            out = state["out"]
            if out is None:
                out = m.signal_summary() if m is not None else at_modem.SignalStats().summary()
                if m is not None:
                    out["model"] = m.result["model"]
                    out["tech"] = m.result["tech"]
            if timed_out:
                out["error"] = "timeout"
            state["out"] = out
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()

    dog = _Watchdog(budget - 0.1, emit)

    async def main():
        stream = None
        try:
            stream = await _open(kind, where, port, args.baud, max(0.1, budget - 0.5))
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            return "open", str(e) or type(e).__name__
        except Exception as e:  # noqa: BLE001 - pyserial raises its own SerialException
            return "open", str(e) or type(e).__name__
        try:
            if action == "probe":
                m = at_modem.Modem(stream, model=args.model, pin=args.pin, apn=args.apn, user=args.user,
                                   password=args.password)
            else:
                m = at_modem.Modem(stream, model=args.model)
            state["modem"] = m
            left = budget - (time.monotonic() - _T0) - 0.4
            m.set_deadline(int(max(0.05, left - 0.2) * 1000))
            try:
                if action == "probe":
                    await asyncio.wait_for(m.probe(), max(0.05, left))
                else:
                    await asyncio.wait_for(_signal(m, args), max(0.05, left))
            except asyncio.TimeoutError:
                return "timeout", None
            return "ok", None
        finally:
            if stream is not None:
                stream.close()

    async def _signal(m, args):
        if not await m.handshake():
            return
        await m.identify()
        if args.live:
            def log(direction, text):
                if text.startswith("+CSQ:") or text.startswith("+CPSI:"):
                    sys.stderr.write(text + "\n")
            m.log = log
        s = await m.sample_signal(args.seconds, int(args.interval * 1000))
        s["model"] = m.result["model"]
        s["tech"] = m.result["tech"]
        s["seconds"] = args.seconds
        if m.expired():
            s["error"] = "timeout"  # --timeout ended the sampling early
        elif m.dead():
            s["error"] = m.stop_reason()
        state["out"] = s

    try:
        status, detail = asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - the contract: never a traceback
        status, detail = "error", "%s: %s" % (type(e).__name__, e)
    if status == "open":
        # No modem to talk to is a status like any other: JSON on stdout, exit 1.
        sys.stderr.write("vegw modem: cannot open %s: %s\n" % (args.modem, detail))
        if action == "probe":
            state["modem"] = None
            state["err"] = "open_failed"
        else:
            state["out"] = {"samples": 0, "unknown": 0, "min": None, "avg": None, "max": None,
                            "error": "open_failed"}
        dog.once(False)
        return 1
    if not dog.once(status == "timeout"):
        return 1
    if status == "error":
        sys.stderr.write("vegw modem: %s\n" % detail)
    out = state["out"] or {}
    if action == "probe":
        ok = out.get("registered") is True and (args.apn is None or out.get("data") == "connect")
    else:
        ok = out.get("min") is not None
    return 0 if ok else 1
