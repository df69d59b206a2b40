"""`vegw plot FILE --out PNG [--from T --to T] [--utc]`: voltage, current, SoC
and PV power over time, one panel per quantity and device role (a battery
monitor's voltage is not drawn on the axes of an MPPT's or an inverter's),
one line per device.

FILE is what `vegw logs` writes (JSON lines, CSV or Parquet) or a raw flash-log
image; instead of FILE, --broker HOST:PORT --gateway ID (MQTT) or --port PORT
(USB) fetch the log from a gateway first, as `vegw logs` does. Per-minute
aggregates with FIELD_min/FIELD_max columns are drawn as a shaded band around
the line. Times are local (the zone is named on the axis) unless --utc.
Tick labels step at least by the field's resolution (never two equal labels,
never "-0"); legends sit outside the data, right of each panel.
"""
import sys

from . import mqtt_link
from .cmd_logs import LogError, fetch_mqtt, fetch_usb, parse_time, read_records, select

# field, quantity name, unit, resolution (smallest step a label shows)
PANELS = (
    ("V", "Voltage", "V", 0.01),
    ("I", "Current", "A", 0.1),
    ("SOC", "State of charge", "%", 0.1),
    ("PPV", "PV power", "W", 1.0),
)
# a device's role from the fields it logs, first match wins
ROLES = (
    ("battery monitor", ("SOC", "CE", "TTG", "H1", "H4")),
    ("solar charger", ("PPV", "VPV", "H20")),
    ("DC-DC charger", ("DC_IN_V", "DC_IN_I")),
    ("inverter", ("AC_OUT_V", "AC_OUT_S", "AC_OUT_I")),
    ("charger", ("CS",)),
)
_NONNEGATIVE = ("SOC", "PPV")


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
    parser.add_argument("--utc", action="store_true", help="time axis in UTC (default: local time, zone named)")
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


def roles(records):
    """{device: role} from the fields each device logged."""
    seen = {}
    for r in records:
        seen.setdefault(r["device"], set()).update(k for k, v in r.items() if _num(v))
    out = {}
    for dev, fields in seen.items():
        out[dev] = next((role for role, marks in ROLES if fields & set(marks)), "other")
    return out


def _decimals(step):
    """Decimals that tell ticks `step` apart."""
    import math

    if step <= 0:
        return 0
    return max(0, -int(math.floor(math.log10(step) + 1e-9)))


def _tick_formatter(resolution):
    """Labels with the decimals the tick step needs (so no two are equal),
    and "0" rather than "-0"."""
    from matplotlib.ticker import Formatter

    class Fmt(Formatter):
        decimals = _decimals(resolution)

        def set_locs(self, locs):
            super().set_locs(locs)
            locs = sorted(locs)
            steps = [b - a for a, b in zip(locs, locs[1:]) if b > a]
            self.decimals = _decimals(min(steps)) if steps else _decimals(resolution)

        def __call__(self, x, pos=None):
            text = "%.*f" % (self.decimals, x)
            if text.startswith("-") and float(text) == 0:
                text = text[1:]
            return text

    return Fmt()


def _zone(utc, t):
    """(tzinfo, name for the axis: the zone at time t)."""
    import datetime

    if utc:
        return datetime.timezone.utc, "UTC"
    from dateutil import tz

    local = tz.tzlocal()
    now = datetime.datetime.fromtimestamp(t, local)
    off = now.utcoffset() or datetime.timedelta(0)
    mins = int(off.total_seconds() // 60)
    name = now.tzname() or "local"
    return local, "%s, UTC%s%02d:%02d" % (name, "+" if mins >= 0 else "-", abs(mins) // 60, abs(mins) % 60)


def plot(records, out, title=None, dpi=110, utc=False):
    """Write the PNG; return [(field, role, [y tick labels])] of the panels drawn."""
    import datetime

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    role_of = roles(records)
    panels = []
    for p in PANELS:
        data = series(records, p[0])
        for role, _ in ROLES + (("other", ()),):
            part = {d: v for d, v in data.items() if role_of[d] == role}
            if part:
                panels.append((p, role, part))
    if not panels:
        raise LogError("no voltage, current, SoC or PV power samples in the selected window")
    tz, zone = _zone(utc, records[0]["t"])
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(11, 1.2 + 2.4 * len(panels)), squeeze=False,
                             layout="constrained")
    devices = sorted({r["device"] for r in records})
    colors = {d: "C%d" % (i % 10) for i, d in enumerate(devices)}
    drawn = []
    for ax, ((field, name, unit, res), role, data) in zip(axes[:, 0], panels):
        lo_all, hi_all = [], []
        for dev in sorted(data):
            ts, vs, lo, hi = data[dev]
            x = [datetime.datetime.fromtimestamp(t, tz) for t in ts]
            ax.plot(x, vs, color=colors[dev], linewidth=1.3, label=dev, marker="." if len(x) < 40 else None)
            if lo != vs or hi != vs:
                ax.fill_between(x, lo, hi, color=colors[dev], alpha=0.18, linewidth=0)
            lo_all.append(min(lo))
            hi_all.append(max(hi))
        ax.set_ylabel("%s (%s)\n%s" % (name, unit, role))
        # a flat line still gets a span of a few resolution steps, so no
        # label repeats; SoC and PV power never go below 0 (nor SoC over 100)
        ymin, ymax = min(lo_all), max(hi_all)
        span = max(ymax - ymin, 5 * res)
        mid = (ymin + ymax) / 2.0
        bottom, top = mid - span * 0.55, mid + span * 0.55
        if field in _NONNEGATIVE:
            bottom = max(0.0, bottom) if ymin >= 0 else bottom
            top = max(top, bottom + 5 * res)
        if field == "SOC":
            top = min(100.5, top) if ymax <= 100 else top
        ax.set_ylim(bottom, top)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10], min_n_ticks=3))
        ax.yaxis.set_major_formatter(_tick_formatter(res))
        ax.grid(True, alpha=0.3)
        if field == "I" and min(lo_all) < 0 < max(hi_all):
            ax.axhline(0, color="0.5", linewidth=0.8)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small", frameon=False)
        drawn.append((field, role, ax))
    loc = mdates.AutoDateLocator(tz=tz)
    axes[-1, 0].xaxis.set_major_locator(loc)
    axes[-1, 0].xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=tz))
    axes[-1, 0].set_xlabel("time (%s)" % zone)
    fmt = "%Y-%m-%d %H:%M"
    span_text = "%s .. %s %s" % (datetime.datetime.fromtimestamp(records[0]["t"], tz).strftime(fmt),
                                 datetime.datetime.fromtimestamp(records[-1]["t"], tz).strftime(fmt), zone.split(",")[0])
    fig.suptitle((title + "\n" + span_text) if title else span_text)
    try:
        fig.savefig(out, dpi=dpi)
        result = []
        for field, role, ax in drawn:
            lo, hi = ax.get_ylim()
            locs = [v for v in ax.yaxis.get_major_locator()() if lo - 1e-9 <= v <= hi + 1e-9]
            result.append((field, role, ax.yaxis.get_major_formatter().format_ticks(locs)))
        return result
    except OSError as e:
        raise LogError("cannot write %s: %s" % (out, e.strerror or e))
    finally:
        plt.close(fig)


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
        panels = plot(records, args.out, args.title or (args.file or args.gateway or args.port), args.dpi,
                      args.utc)
    except LogError as e:
        return _err(str(e))
    drawn = []
    for field, _, _ in panels:
        if field not in drawn:
            drawn.append(field)
    print("wrote %s: %s; %d samples, %d device%s" % (
        args.out, ", ".join(drawn), len(records), len({r["device"] for r in records}),
        "" if len({r["device"] for r in records}) == 1 else "s"))
    return 0
