"""`vegw dashboard`: the fleet in a browser, live, for a NOC beside the broker.

One MQTT connection (mqtt_link: --broker, auth, TLS) subscribes to the
fleet's topics (vegw/fleet.py, the model `vegw monitor` uses) and a small
aiohttp server (vegw/dashboard/) serves:
  /               one row per site, devices folded in; sort, filter, live (SSE)
  /site/GW        the site's devices, alarms with raise/clear times, charts of
                  the last day/week/month from its flash log (`logs` command)
  /api/...        the same as JSON (sites, site, history, stats)

Read-only: only GET, no command but the read-only `logs` (--no-history: none).
Listening on anything but loopback needs --web-password (HTTP basic auth;
$VEGW_DASHBOARD_PASSWORD keeps it out of the process list), ideally with
--cert/--key; or keep the default 127.0.0.1 and put the operator's reverse
proxy (TLS, login) in front (docs/dashboard.md).
"""
import argparse
import ipaddress
import os
import signal
import sys

from . import mqtt_link
from .fleet import Fleet

PASSWORD_ENV = "VEGW_DASHBOARD_PASSWORD"


def add_arguments(parser):
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                        help="address to serve on (default 127.0.0.1:8080; other than loopback needs --web-password)")
    parser.add_argument("--prefix", default="vegw", help="topic prefix (default vegw)")
    parser.add_argument("--title", default="vegw fleet", help="page title")
    parser.add_argument("--stale", type=float, default=None, metavar="SECONDS",
                        help="a device is stale after this long unheard (default: twice the heartbeat its gateway "
                        "declares, 600 s if none)")
    web = parser.add_argument_group("access")
    web.add_argument("--web-user", default="vegw", help="login name with --web-password (default vegw)")
    web.add_argument("--web-password", help="require this password to see the page (HTTP basic auth); default "
                     "$%s, which keeps it out of the process list" % PASSWORD_ENV)
    web.add_argument("--cert", metavar="FILE", help="serve HTTPS with this certificate (PEM; with --key)")
    web.add_argument("--key", metavar="FILE", help="private key of --cert")
    hist = parser.add_argument_group("history (charts)")
    hist.add_argument("--no-history", action="store_true",
                      help="never send the logs command: no charts, nothing at all sent to gateways")
    hist.add_argument("--history-ttl", type=float, default=60.0, metavar="S",
                      help="fetch what is new when the cached history is older than this (default 60)")
    hist.add_argument("--history-timeout", type=float, default=10.0, metavar="S",
                      help="seconds to wait for a gateway's answer (default 10)")
    hist.add_argument("--history-sites", type=int, default=16, metavar="N",
                      help="sites whose history is kept in memory (default 16, ~3 MB each for a month)")
    al = parser.add_argument_group("alerts (alarm raised/cleared, gateway offline/back)")
    al.add_argument("--webhook", action="append", default=[], metavar="URL", help="POST a JSON object (repeatable)")
    al.add_argument("--ntfy", action="append", default=[], metavar="URL",
                    help="ntfy-style POST: text body, Title/Priority/Tags headers, e.g. https://ntfy.sh/TOPIC "
                    "(repeatable)")
    al.add_argument("--alert-rate", type=int, default=20, metavar="N", help="alerts a minute at most (default 20)")
    al.add_argument("--alert-gap", type=float, default=300.0, metavar="S",
                    help="the same alert for the same site and alarm at most this often (default 300)")
    al.add_argument("--alert-severity", choices=("info", "warning", "alarm"), default="warning",
                    help="lowest alarm severity that alerts (default warning)")
    al.add_argument("--public-url", metavar="URL", help="the dashboard's address as operators reach it: alerts link to "
                    "the site page")
    mqtt_link.add_arguments(parser, default="127.0.0.1:1883")


def _err(msg):
    sys.stderr.write("vegw dashboard: %s\n" % msg)
    return 2


def parse_listen(text):
    """(host, port) from HOST:PORT, :PORT or [v6]:PORT."""
    try:
        host, port = mqtt_link.parse_broker(text)
    except ValueError as e:
        if text.startswith(":") and text[1:].isdigit():
            return "127.0.0.1", int(text[1:])
        raise ValueError(str(e))
    if ":" not in text.strip("[]") or text.strip().endswith("]"):
        raise ValueError("give a port: HOST:PORT")
    return host, port


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _check(args):
    """Problems with the arguments, as one line (None: fine)."""
    try:
        args.host, args.port = parse_listen(args.listen)
    except ValueError as e:
        return "--listen %s: %s" % (args.listen, e)
    args.web_password = args.web_password or os.environ.get(PASSWORD_ENV) or None
    if not is_loopback(args.host) and not args.web_password:
        return ("--listen %s is reachable from other machines: give a password (--web-password or $%s), or keep "
                "127.0.0.1 and put your reverse proxy in front (docs/dashboard.md)" % (args.listen, PASSWORD_ENV))
    if args.web_password is not None and len(args.web_password) < 8:
        return "the password must have at least 8 characters"
    if bool(args.cert) != bool(args.key):
        return "--cert and --key go together"
    for url in args.webhook + args.ntfy + ([args.public_url] if args.public_url else []):
        if not url.startswith(("http://", "https://")):
            return "%s: an alert hook or public URL must start with http:// or https://" % url.split("?")[0]
    if args.alert_rate < 1 or args.alert_gap < 0 or args.history_ttl < 0 or args.history_timeout <= 0 \
            or args.history_sites < 1 or (args.stale is not None and args.stale <= 0):
        return "--alert-rate, --history-sites and --history-timeout must be positive; --alert-gap and " \
               "--history-ttl not negative"
    return None


def _run(args):
    problem = _check(args)
    if problem:
        return _err(problem)
    import asyncio

    from aiohttp import web  # the [dashboard] extra; cli.py names it when missing

    from .dashboard.alerts import Alerts
    from .dashboard.history import History
    from .dashboard.server import Dashboard

    ssl_ctx = None
    if args.cert:
        import ssl

        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_ctx.load_cert_chain(args.cert, args.key)
        except (OSError, ssl.SSLError) as e:
            return _err("--cert/--key: %s" % (getattr(e, "strerror", None) or e))

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    session_box = []

    async def post(url, body, headers):
        import aiohttp

        if not session_box:
            session_box.append(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)))
        async with session_box[0].post(url, data=body, headers=headers) as r:
            return r.status

    alerts = Alerts(args.webhook, args.ntfy, post=post, per_minute=args.alert_rate, min_gap_s=args.alert_gap,
                    severity=args.alert_severity, public_url=args.public_url)
    fleet = Fleet(args.prefix, args.stale,
                  on_transition=lambda a: loop.call_soon_threadsafe(alerts.offer, a) if alerts.enabled else None)
    client_box = []

    def publish(topic, payload, qos):
        if client_box:
            client_box[0].publish(topic, payload, qos=qos)

    history = History(publish, args.prefix, on_events=fleet.merge_alarm_history, max_sites=args.history_sites,
                      timeout=args.history_timeout, ttl=args.history_ttl, enabled=not args.no_history)
    history.bind(loop)
    logs_suffix = "/logs"

    def on_message(client, userdata, msg):
        # an exception here would stop paho's network thread: a message that
        # gets one is counted as bad instead (the model is built not to raise)
        try:
            if msg.topic.endswith(logs_suffix):
                history.on_message(msg.topic, msg.payload)
            else:
                fleet.handle(msg.topic, msg.payload, msg.retain)
        except Exception:  # noqa: BLE001
            fleet.bad += 1

    def on_connect(c):
        subs = [(t, 1 if t.endswith(("/event", "/availability")) else 0) for t in fleet.topics()]
        if not args.no_history:
            subs += [(t, 1) for t in history.topics()]
        c.subscribe(subs)

    try:
        client_box.append(mqtt_link.connect(args, "vegw-dashboard", on_connect=on_connect, on_message=on_message))
    except mqtt_link.LinkError as e:
        return _err(str(e))

    dash = Dashboard(fleet, history, alerts, title=args.title, password=args.web_password, user=args.web_user)
    runner = web.AppRunner(dash.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    stop = asyncio.Event()

    async def main():
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port, ssl_context=ssl_ctx)
        try:
            await site.start()
        except OSError as e:
            return _err("cannot listen on %s: %s" % (args.listen, mqtt_link.describe(e)))
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        scheme = "https" if ssl_ctx else "http"
        host = "[%s]" % args.host if ":" in args.host else args.host
        print("vegw dashboard: %s://%s:%d/ (broker %s, prefix %s%s%s)" % (
            scheme, host, args.port, args.broker, args.prefix,
            ", login required" if args.web_password else "", ", history off" if args.no_history else ""), flush=True)
        if args.web_password and not ssl_ctx and not is_loopback(args.host):
            print("vegw dashboard: note: plain HTTP: the password crosses the network in clear text; use --cert/--key "
                  "or a TLS reverse proxy", flush=True)
        await stop.wait()
        return 0

    try:
        rc = loop.run_until_complete(main())
    finally:
        try:
            loop.run_until_complete(runner.cleanup())
            if session_box:
                loop.run_until_complete(session_box[0].close())
            rest = [t for t in asyncio.all_tasks(loop) if not t.done()]  # an alert delivery, a history fetch
            for t in rest:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        finally:
            try:
                mqtt_link.close(client_box[0])
            except Exception:  # noqa: BLE001 - already gone
                pass
            loop.close()
    return rc


def run(args):
    # Never a traceback for the user: an unexpected failure is one line (VEGW_DEBUG=1 shows it).
    try:
        return _run(args)
    except (KeyboardInterrupt, BrokenPipeError, ImportError):
        raise  # cli.py names the missing extra for an ImportError
    except Exception as e:  # noqa: BLE001
        if os.environ.get("VEGW_DEBUG"):
            raise
        return _err("unexpected %s: %s (VEGW_DEBUG=1 for details)" % (type(e).__name__, e))


if __name__ == "__main__":  # python -m vegw.cmd_dashboard (tests, without the CLI)
    p = argparse.ArgumentParser(prog="vegw dashboard")
    add_arguments(p)
    sys.exit(run(p.parse_args()))
