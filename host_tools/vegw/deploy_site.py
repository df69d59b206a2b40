"""A site's own files as `vegw deploy` and `vegw flash` put them on a board:
config.json (validated against the board, starter placeholders refused),
board.json and the MQTT CA file. Every problem is found before the board
is touched."""
import json
import os
import pathlib
import sys

from . import ROOT


class DeployError(Exception):
    pass


def _load_json(path, what):
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as e:
        raise DeployError("%s: cannot read %s (%s)" % (path, what, e.strerror or e))
    try:
        return data, json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise DeployError("%s: %s is not UTF-8 text" % (path, what))
    except json.JSONDecodeError as e:
        raise DeployError("%s: %s is not valid JSON (line %d, column %d: %s)" % (path, what, e.lineno, e.colno, e.msg))
    except ValueError as e:  # a number of more than 4300 digits
        raise DeployError("%s: %s is not valid JSON (%s)" % (path, what, str(e).split(";")[0]))


def _board_file(name):
    p = pathlib.Path(name)
    if p.suffix == ".json" or os.sep in name or "/" in name:
        if not p.is_file():
            raise DeployError("--board %s: no such file" % name)
        return p
    p = ROOT / "boards" / name / "board.json"
    if not p.is_file():
        have = sorted(d.name for d in (ROOT / "boards").glob("*") if (d / "board.json").is_file())
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise DeployError("unknown board %r (no boards/%s/board.json; known: %s)" % (shown, shown, ", ".join(have) or "none"))
    return p


def _validate(cfg, board, path):
    try:
        import cfg_schema
    except ImportError:
        sys.stderr.write("vegw deploy: warning: firmware/lib/cfg_schema.py not found, config not validated\n")
        return
    res = cfg_schema.validate(cfg, board)
    errors = res[1] if isinstance(res, tuple) and len(res) == 2 else res
    if not errors:
        return
    msgs = []
    for e in errors:
        if isinstance(e, (tuple, list)) and len(e) == 2:
            msgs.append("%s: %s" % (e[0], e[1]))
        else:
            msgs.append(str(e))
    more = " (and %d more; see `vegw config validate %s`)" % (len(msgs) - 1, path) if len(msgs) > 1 else ""
    raise DeployError("%s: %s%s; not deploying an invalid config" % (path, msgs[0], more))


def _refuse_placeholders(cfg, path):
    """A starter value (CHANGE-ME, the example BLE key) would boot a gateway
    that can never connect: an error here, a warning in `config validate`."""
    from .cmd_config import placeholders

    left = placeholders(cfg)
    if left:
        raise DeployError("%s: %s still the starter placeholder (%s); edit it, then deploy" % (
            path, "is" if len(left) == 1 else "are", ", ".join(left)))


def local_extras(args):
    """[(device path, bytes)] for config.json, board.json (and the CA file),
    plus the parsed config (or None). Fails before the board is touched."""
    extras = []
    cfg = None
    board = None
    board_name = args.board
    if args.config:
        raw, cfg = _load_json(args.config, "config")
        if not isinstance(cfg, dict):
            raise DeployError("%s: config must be a JSON object" % args.config)
        gw = cfg.get("gateway") if isinstance(cfg.get("gateway"), dict) else {}
        cfg_board = gw.get("board")
        if board_name and cfg_board and isinstance(cfg_board, str) and pathlib.Path(board_name).stem != cfg_board \
                and pathlib.Path(board_name).parent.name != cfg_board:
            raise DeployError("--board %s but %s has gateway.board %r" % (board_name, args.config, cfg_board))
        board_name = board_name or (cfg_board if isinstance(cfg_board, str) else None)
    if board_name:
        braw, board = _load_json(_board_file(board_name), "board file")
        extras.append(("/board.json", braw))
    args.board_data = board
    if cfg is not None:
        _validate(cfg, board, args.config)
        _refuse_placeholders(cfg, args.config)
        from .cmd_config import device_config_bytes

        extras.append(("/config.json", device_config_bytes(raw, cfg)))
        mqtt = cfg.get("mqtt") if isinstance(cfg.get("mqtt"), dict) else {}
        ca = mqtt.get("ca")
        if isinstance(ca, str) and ca:
            ca_path = pathlib.Path(args.config).resolve().parent / ca
            rel = pathlib.PurePosixPath(ca.replace("\\", "/"))
            if ".." in rel.parts:
                sys.stderr.write("vegw deploy: warning: mqtt.ca %r points outside the device root; not uploaded\n" % ca)
            elif ca_path.is_file():
                # same relative path on the device as in the config ("/" is the cwd at boot)
                extras.append(("/" + rel.as_posix().lstrip("/"), ca_path.read_bytes()))
            else:
                sys.stderr.write("vegw deploy: warning: mqtt.ca %r not found next to %s; assuming it is on the board\n" % (ca, args.config))
    return extras, cfg


def no_psram_line(board):
    name = board.get("name", "this board")
    return ("%s has no PSRAM: the gateway's .mpy files in /lib would take about 73 KB of its ~111 KB heap "
            "(docs/ram.md), so it runs only from an image with the code frozen: "
            "`vegw flash --port PORT --board %s` (flash the image, then upload config.json and board.json)" % (name, name))
