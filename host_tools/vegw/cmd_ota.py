"""vegw ota: update firmware files on a remote gateway over MQTT.

    vegw ota --broker HOST:PORT --gateway site-042 --all
    vegw ota --broker HOST:PORT --gateway site-042 --files lib/alarm_rules.py main.py

Talks to firmware/lib/ota_rx.py on the gateway through <prefix>/<gw>/ota/...:
query (state, .mpy format) -> manifest (path, size, sha256 per file) -> the
files the gateway lacks, in chunks of 1 KB (QoS 1, at most WINDOW chunks
ahead of the gateway's last "recv" ack, resending on request) -> commit ->
the gateway swaps the files in, reboots, and reports "healthy" or rolls back.

Exit codes: 0 updated and healthy (or nothing to update), 2 bad input or
broker unreachable, 3 the gateway rolled the update back, 4 timeout (no
answer, or no health report in --timeout), 5 the gateway refused the update
(busy with another one, no space, a file failing its hash twice, ...).
"""
# The transfer to one gateway (session, manifest, chunks, commit, health)
# is ota_transfer.py; here the options and the staged rollout.
import os
import pathlib
import sys

from . import ROOT, FIRMWARE
from . import deploy_build as build_mod
from .ota_transfer import (EXIT_OK, EXIT_USAGE, OtaFail, Session, _broker, _err,  # noqa: F401
                           _update)

EPILOG = """\
Only files the gateway lacks are sent (it compares sha256). Each file is
checked on the gateway before it replaces the old one; the old one is kept
until the new firmware reports healthy, and restored if it does not.
Exit status: 0 updated and healthy (or nothing to do), 2 bad input or broker
unreachable, 3 rolled back by the gateway, 4 timeout, 5 refused by the gateway."""


def add_arguments(p):
    import argparse

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG

    p.add_argument("--gateway", required=True, metavar="ID|GLOB|@FILE",
                   help="gateway id (gateway.id in its config); a glob ('site-1*') of the gateways seen on the "
                        "broker, or @FILE with one id a line: a staged rollout (one, then batches, stopping at "
                        "the first failure) with a table at the end")
    p.add_argument("--batch", type=int, default=10, metavar="N",
                   help="rollout: gateways per stage after the first one (default 10)")
    p.add_argument("--prefix", default="vegw", help="topic prefix (mqtt.prefix in the config; default vegw)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--files", nargs="+", metavar="PATH", help="firmware files to send, relative to --firmware (e.g. lib/metrics.py main.py)")
    what.add_argument("--all", action="store_true", help="every firmware file (only those that differ are transferred)")
    p.add_argument("--firmware", default=str(FIRMWARE), metavar="DIR", help="firmware tree (default: this repository's firmware/)")
    p.add_argument("--build-dir", default=str(ROOT / "build"), metavar="DIR", help="where compiled files go (default: build/)")
    p.add_argument("--no-compile", action="store_true", help="send .py sources even when the gateway loads .mpy")
    p.add_argument("--version", dest="fw_version", metavar="TEXT", help="version label recorded on the gateway (default: date and content hash)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="give up after S seconds in total, health report included (default 600)")
    p.add_argument("--fleet-key", metavar="HEX", default=os.environ.get("VEGW_FLEET_KEY"),
                   help="the operator's fleet key, hex (default: $VEGW_FLEET_KEY): each gateway's key is derived "
                        "from it and the gateway id (vegw provision writes the same into ota.key)")
    p.add_argument("--key", metavar="HEX", default=os.environ.get("VEGW_OTA_KEY"),
                   help="the gateway's own OTA key, hex (default: $VEGW_OTA_KEY), instead of --fleet-key")
    from . import mqtt_link

    mqtt_link.add_arguments(p, required=True)


def run(args):
    try:
        return _run(args)
    except OtaFail as e:
        return _err(e.code, str(e))
    except build_mod.BuildError as e:
        return _err(EXIT_USAGE, str(e))
    except OSError as e:  # local files: build dir not writable, disk full, ...
        return _err(EXIT_USAGE, "%s%s" % (e.strerror or e, ": " + str(e.filename) if getattr(e, "filename", None) else ""))


def _key(text, option="--key"):
    if text is None:
        return None
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise OtaFail(EXIT_USAGE, "%s must be hex (e.g. 64 hex characters for 32 bytes)" % option)
    if len(key) < 16:
        raise OtaFail(EXIT_USAGE, "%s must be at least 16 bytes (32 hex characters)" % option)
    return key


def _run(args):
    from .cmd_deploy import Progress

    if args.timeout <= 0:
        raise OtaFail(EXIT_USAGE, "--timeout must be positive")
    _broker(args.broker)
    args.key_bytes = _key(args.key)
    args.fleet_key_bytes = _key(args.fleet_key, "--fleet-key")
    if not pathlib.Path(args.firmware).is_dir():
        raise OtaFail(EXIT_USAGE, "--firmware %s: not a directory" % args.firmware)
    fleet = args.gateway.startswith("@") or any(c in args.gateway for c in "*?[")
    s = Session(args)
    try:
        if fleet:
            seen = s.seen
        elif s.seen and args.gateway not in s.seen:
            # a mistyped id would wait for the whole --timeout otherwise
            raise OtaFail(EXIT_USAGE, "no gateway %s on this broker; seen: %s" % (
                args.gateway, ", ".join(sorted(s.seen)[:20]) + (" ..." if len(s.seen) > 20 else "")))
        else:
            return _update(args, s, Progress)
    finally:
        s.close()
    return _rollout(args, _targets(args.gateway, seen), Progress)


def _targets(spec, seen):
    """Gateway ids of a rollout: @FILE (one a line, # comments) or a glob over
    the gateways with a retained availability on the broker."""
    import fnmatch

    if spec.startswith("@"):
        try:
            with open(spec[1:]) as f:
                ids = [ln.split("#")[0].strip() for ln in f]
        except OSError as e:
            raise OtaFail(EXIT_USAGE, "%s: %s" % (spec[1:], e.strerror or e))
        ids = [i for i in ids if i]
    else:
        ids = sorted(g for g in seen if fnmatch.fnmatchcase(g, spec))
    if not ids:
        raise OtaFail(EXIT_USAGE, "no gateway matches %s (seen on this broker: %s)" % (
            spec, ", ".join(sorted(seen)[:20]) or "none"))
    return ids


def _rollout(args, ids, Progress):
    """One gateway first, then stages of --batch; the first failure stops the
    rollout (the rest are skipped). Prints a table; returns the first
    failure's exit code, or 0."""
    import copy

    if args.batch < 1:
        raise OtaFail(EXIT_USAGE, "--batch must be at least 1")
    stages = [ids[:1]] + [ids[i:i + args.batch] for i in range(1, len(ids), args.batch)]
    rows = []
    rc = EXIT_OK
    for n, stage in enumerate(stages):
        for gid in stage:
            if rc != EXIT_OK:
                rows.append((gid, n + 1, "skipped", "an earlier gateway failed"))
                continue
            one = copy.copy(args)
            one.gateway = gid
            sys.stderr.write("vegw ota: stage %d/%d: %s\n" % (n + 1, len(stages), gid))
            try:
                s = Session(one)
                try:
                    code = _update(one, s, Progress)
                finally:
                    s.close()
                detail = "healthy" if code == EXIT_OK else "exit %d" % code
            except OtaFail as e:
                code, detail = e.code, str(e)
            rows.append((gid, n + 1, "ok" if code == EXIT_OK else "FAILED", detail))
            if code != EXIT_OK:
                rc = code
    w = max(len("gateway"), max(len(r[0]) for r in rows))
    print("%-*s  stage  result   detail" % (w, "gateway"))
    for gid, stage, result, detail in rows:
        print("%-*s  %5d  %-7s  %s" % (w, gid, stage, result, detail[:100]))
    return rc


