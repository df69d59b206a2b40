"""`vegw plot FILE --out PNG [--from T --to T]`: voltage, current, SoC and PV
power over time, one panel per quantity that has data, one line per device.

FILE is what `vegw logs` writes (JSON lines, CSV or Parquet) or a raw flash-log
image; instead of FILE, --broker HOST:PORT --gateway ID (MQTT) or --port PORT
(USB) fetch the log from a gateway first, as `vegw logs` does. Per-minute aggregates with FIELD_min/FIELD_max
columns are drawn as a shaded band around the line. Times are UTC.
"""
import sys

from . import mqtt_link
from .cmd_logs import LogError, fetch_mqtt, fetch_usb, iso, parse_time, read_records, select

# field, panel title, unit, tick format
PANELS = (
    ("V", "Battery voltage", "V", "%.2f"),
    ("I", "Battery current", "A", "%.1f"),
    ("SOC", "State of charge", "%", "%.0f"),
    ("PPV", "PV power", "W", "%.0f"),
)


def add_arguments(parser):
    parser.add_argument("file", nargs="?", metavar="FILE", help="JSON lines, CSV or Parquet from `vegw logs`")
    parser.add_argument("--out", required=True, metavar="PNG")
    parser.add_argument("--from", dest="t_from", metavar="T", help="start (unix seconds or ISO 8601, UTC)")
    parser.add_argument("--to", dest="t_to", metavar="T", help="end (unix seconds or ISO 8601, UTC)")
    parser.add_argument("--device", action="append", metavar="NAME", help="only this device (repeatable)")
    parser.add_argument("--title", help="figure title (default: file name and time span)")
    parser.add_argument("--port", metavar="PORT", help="read the log of a board on USB instead of FILE")
    parser.add_argument("--gateway", metavar="ID")
    parser.add_argument("--prefix", default="vegw")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--dpi", type=int, default=110)
    mqtt_link.add_arguments(parser).description = "fetch the log from a gateway over MQTT instead of FILE (with --gateway)"


def _err(msg):
    sys.stderr.write("vegw plot: %s\n" % msg)
    return 2


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def series(records, field):
    """{device: (times, values, mins or None, maxs or None)} for one field."""
    out = {}
    for r in records:
        v = r.get(field)
        if not _num(v):
            continue
        s = out.setdefault(r["device"], ([], [], [], []))
        s[0].append(r["t"])
        s[1].append(v)
        lo, hi = r.get(field + "_min"), r.get(field + "_max")
        s[2].append(lo if _num(lo) else v)
        s[3].append(hi if _num(hi) else v)
    return out


def plot(records, out, title=None, dpi=110):
    """Write the PNG; return the list of panel fields drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import datetime

    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    panels = [(p, series(records, p[0])) for p in PANELS]
    panels = [(p, s) for p, s in panels if s]
    if not panels:
        raise LogError("no voltage, current, SoC or PV power samples in the selected window")
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(11, 1.2 + 2.4 * len(panels)), squeeze=False)
    utc = datetime.timezone.utc
    devices = sorted({r["device"] for r in records})
    colors = {d: "C%d" % (i % 10) for i, d in enumerate(devices)}
    for ax, ((field, name, unit, fmt), data) in zip(axes[:, 0], panels):
        for dev in sorted(data):
            ts, vs, lo, hi = data[dev]
            x = [datetime.datetime.fromtimestamp(t, utc) for t in ts]
            ax.plot(x, vs, color=colors[dev], linewidth=1.3, label=dev, marker="." if len(x) < 40 else None)
            if lo != vs or hi != vs:
                ax.fill_between(x, lo, hi, color=colors[dev], alpha=0.18, linewidth=0)
        ax.set_ylabel("%s (%s)" % (name, unit))
        ax.yaxis.set_major_formatter(FormatStrFormatter(fmt))
        ax.grid(True, alpha=0.3)
        if field == "SOC":
            ax.set_ylim(max(0, ax.get_ylim()[0]), min(100.5, max(ax.get_ylim()[1], 1)))
        if field == "I":
            ax.axhline(0, color="0.5", linewidth=0.8)
        ax.legend(loc="upper left", fontsize="small", ncol=min(4, len(data)), frameon=False)
    loc = mdates.AutoDateLocator(tz=utc)
    axes[-1, 0].xaxis.set_major_locator(loc)
    axes[-1, 0].xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=utc))
    axes[-1, 0].set_xlabel("time (UTC)")
    span = "%s .. %s" % (iso(records[0]["t"]), iso(records[-1]["t"]))
    fig.suptitle((title + "\n" + span) if title else span)
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=dpi)
    except OSError as e:
        raise LogError("cannot write %s: %s" % (out, e.strerror or e))
    finally:
        plt.close(fig)
    return [p[0] for p, _ in panels]


def run(args):
    try:
        if sum(1 for x in (args.file, args.broker, args.port) if x) != 1:
            raise LogError("give one of FILE, --broker HOST:PORT --gateway ID, or --port PORT")
        if args.port:
            records = fetch_usb(args.port)
        elif args.broker:
            if not args.gateway:
                raise LogError("--broker needs --gateway ID")
            records = fetch_mqtt(args, args.gateway, args.prefix, timeout=args.timeout)
        else:
            records = read_records(args.file)
        t_from, t_to = parse_time(args.t_from), parse_time(args.t_to)
        if t_from is not None and t_to is not None and t_to <= t_from:
            raise LogError("--to must be after --from")
        records = select(records, t_from, t_to, args.device)
        if not records:
            raise LogError("no samples%s" % (" in the selected window" if (t_from or t_to) else ""))
        drawn = plot(records, args.out, args.title or (args.file or args.gateway or args.port), args.dpi)
    except LogError as e:
        return _err(str(e))
    print("wrote %s: %s; %d samples, %d device%s" % (
        args.out, ", ".join(drawn), len(records), len({r["device"] for r in records}),
        "" if len({r["device"] for r in records}) == 1 else "s"))
    return 0
