"""vegw decode [FILE|-] [--port DEV]: VE.Direct capture -> JSON lines.

Contract (scripts rely on it): one JSON object per line for each block whose
checksum holds; keys are the labels as sent, values in SI units (V, A, W, Ah,
%, kWh, degC, minutes; ON/OFF as booleans; enums and bit masks as integer
codes; "---" and TTG -1 as null; unknown labels as strings). At exit, one line
of counters goes to stderr. `--pretty` prints a human table instead.
"""
import json
import sys

from . import LIB  # noqa: F401  (puts firmware/lib on sys.path)

import field_names
import vedirect
import vedirect_fields as F
import vedirect_text as T
import vedirect_hex


def add_arguments(p):
    p.add_argument("file", nargs="?", default="-", help="capture file (raw bytes) or - for stdin")
    p.add_argument("--port", help="read a serial port instead (needs pyserial), e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=19200)
    p.add_argument("--seconds", type=float, default=0, help="with --port: stop after this long (0 = until Ctrl-C)")
    p.add_argument("--pretty", action="store_true", help="human table with units and enum names")
    p.add_argument("--hex", action="store_true", help="also print valid HEX frames as {\"hex\": ...} objects")


def _pretty(values, out):
    out.write("-" * 60 + "\n")
    for label, value in values.items():
        info = field_names.info(label)
        unit = info[1] if info else ""
        text = T.text(label, value) if isinstance(value, int) and not isinstance(value, bool) else None
        if label == "PID" and value is not None:
            shown = "0x%04X %s" % (value, T.product_name(value) or "(unknown product)")
        elif value is None:
            shown = "n/a"
        elif isinstance(value, bool):
            shown = "ON" if value else "OFF"
        elif isinstance(value, float):
            shown = ("%." + str(F.decimals(label)) + "f") % value
        else:
            shown = str(value)
        line = "%-10s %s" % (label, shown)
        if unit and value is not None:
            line += " " + unit
        if text:
            line += "  (%s)" % text
        out.write(line + "\n")


def _chunks_from_port(args):
    try:
        import serial
    except ImportError:
        raise SystemExit("vegw decode: --port needs pyserial (pip install pyserial)")
    import time

    try:
        ser = serial.Serial(args.port, args.baud, timeout=0.2)
    except Exception as e:
        raise SystemExit("vegw decode: cannot open %s: %s" % (args.port, e))
    deadline = time.monotonic() + args.seconds if args.seconds else None
    last = time.monotonic()
    while deadline is None or time.monotonic() < deadline:
        data = ser.read(512)
        now = time.monotonic()
        if data:
            last = now
            yield data
        elif now - last > 0.5:
            yield None  # silent gap: the parser forgets a half block
            last = now


def run(args):
    out = sys.stdout

    def on_block(blk):
        values = T.decode(blk)
        if args.pretty:
            _pretty(values, out)
        else:
            out.write(json.dumps(values) + "\n")

    def on_hex(frame):
        if not args.hex:
            return
        fr = vedirect_hex.decode(frame.raw())
        obj = {"hex": frame.raw().decode().strip(), "command": fr.command}
        if fr.register is not None:
            obj.update(register=fr.register, flags=fr.flags, value=fr.value_uint())
        out.write(json.dumps(obj) + "\n")

    parser = vedirect.Parser(on_block, on_hex)
    try:
        if args.port:
            for chunk in _chunks_from_port(args):
                if chunk is None:
                    parser.reset()
                else:
                    parser.feed(chunk)
        else:
            try:
                src = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
            except OSError as e:
                sys.stderr.write("vegw decode: %s: %s\n" % (args.file, e.strerror))
                return 2
            with src:
                while True:
                    chunk = src.read(4096)
                    if not chunk:
                        break
                    parser.feed(chunk)
    except KeyboardInterrupt:
        pass
    finally:
        out.flush()
        c = parser.counters()
        sys.stderr.write("vegw decode: " + " ".join("%s=%d" % (k, c[k]) for k in sorted(c)) + "\n")
    return 0
