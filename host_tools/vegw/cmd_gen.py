"""vegw gen MODEL [--seconds N] [--seed S] [-o FILE]: a byte-exact VE.Direct
stream of a simulated device (what the product would send on its TX pin)."""
import sys

from . import vestream


def add_arguments(p):
    p.add_argument("model", choices=sorted(vestream.MODELS), help="simulated device")
    p.add_argument("--seconds", type=int, default=60, help="seconds of traffic (default 60)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("-o", "--out", default="-", help="output file (default stdout)")


def run(args):
    data = vestream.make(args.model, seed=args.seed).stream(args.seconds)
    if args.out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        with open(args.out, "wb") as f:
            f.write(data)
    return 0
