"""One broker connection for every host command that talks MQTT.

The option set (`--broker HOST:PORT --username --password --tls --ca`) and the
connect path (auth, TLS, wait for CONNACK, one-line errors) live here, so
monitor, logs, ota, deploy, bridge and dashboard behave the same way:

    mqtt_link.add_arguments(parser)                 # in add_arguments()
    client = mqtt_link.connect(args, "vegw-logs")   # in run(); raises LinkError

`connect` returns a paho client (callback API 2) whose network loop runs in a
thread and whose CONNACK was a success. Subscribe in `on_connect` (passed in)
when the subscriptions must survive a reconnect.
"""
import os
import random
import threading

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
PASSWORD_ENV = "VEGW_MQTT_PASSWORD"


class LinkError(Exception):
    """A broker problem worth one line on stderr (exit 2)."""


def add_arguments(parser, required=False, default=None):
    """The broker option set. `default` (e.g. "127.0.0.1:1883") for commands
    that have a natural local broker; `required` for those that need one."""
    g = parser.add_argument_group("broker")
    helptext = "MQTT broker (port defaults to %d, %d with --tls)" % (DEFAULT_PORT, DEFAULT_TLS_PORT)
    if default:
        helptext += "; default %s" % default
    g.add_argument("--broker", metavar="HOST:PORT", required=required, default=default, help=helptext)
    g.add_argument("--username", help="broker user name")
    g.add_argument("--password", help="broker password (default: $%s, which keeps it out of the process list)" % PASSWORD_ENV)
    g.add_argument("--tls", action="store_true", help="connect with TLS")
    g.add_argument("--ca", metavar="FILE", help="CA certificate that signed the broker's (implies --tls; without it the "
                   "system's CAs are used)")
    g.add_argument("--insecure", action="store_true", help="with --tls: do not check the broker's certificate "
                   "(encrypted, but the server is not authenticated)")
    return g


def parse_broker(text, tls=False):
    """(host, port) from HOST, HOST:PORT or [v6]:PORT; ValueError otherwise."""
    if not text or not text.strip():
        raise ValueError("empty broker address")
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError("no host in %r" % text)
    if not port:
        return host, DEFAULT_TLS_PORT if tls else DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("port %r out of range 1-65535" % port)
    return host, int(port)


def describe(exc):
    """A human phrase for a socket error ('connection refused', not OSError(111,))."""
    import errno
    import socket
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate check failed: %s" % (exc.verify_message or exc)
    if isinstance(exc, ssl.SSLError):
        return "TLS error: %s" % (exc.reason or exc)
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the host name (%s)" % (exc.strerror or exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    names = {errno.ECONNREFUSED: "connection refused", errno.EHOSTUNREACH: "host unreachable",
             errno.ENETUNREACH: "network unreachable", errno.ECONNRESET: "connection reset"}
    if isinstance(exc, OSError) and exc.errno in names:
        return names[exc.errno]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def password(args):
    return getattr(args, "password", None) or os.environ.get(PASSWORD_ENV)


def client(args, client_id_prefix="vegw", client_id=None, clean_session=True, manual_ack=False):
    """A configured, unconnected paho client (auth and TLS set from args).
    client_id + clean_session=False: a persistent session (the broker keeps
    subscriptions and unacknowledged QoS 1 messages across a restart);
    manual_ack: the caller acknowledges QoS 1 messages with client.ack()."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise LinkError("paho-mqtt is not installed (pip install paho-mqtt)")
    cid = client_id or "%s-%d-%06x" % (client_id_prefix, os.getpid(), random.randrange(1 << 24))
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean_session,
                    manual_ack=manual_ack)
    if getattr(args, "username", None):
        c.username_pw_set(args.username, password(args))
    tls = getattr(args, "tls", False) or getattr(args, "ca", None)
    if tls:
        try:
            c.tls_set(ca_certs=args.ca or None)
        except (OSError, ValueError) as e:
            raise LinkError("--ca %s: %s" % (args.ca, describe(e)))
        if getattr(args, "insecure", False):
            c.tls_insecure_set(True)
    return c


def connect(args, client_id_prefix="vegw", on_connect=None, on_message=None, timeout=10.0, keepalive=30,
            setup=None, **client_kw):
    """Connect, start the network loop, wait for a successful CONNACK.
    setup(client): settings paho takes only before connecting (in-flight
    window, ...). client_kw: client_id, clean_session, manual_ack (see client())."""
    tls = bool(getattr(args, "tls", False) or getattr(args, "ca", None))
    try:
        host, port = parse_broker(args.broker, tls)
    except (ValueError, TypeError) as e:
        raise LinkError("--broker must be HOST:PORT, got %r (%s)" % (args.broker, e))
    c = client(args, client_id_prefix, **client_kw)
    if setup is not None:
        setup(c)
    done = threading.Event()
    refused = []

    def _on_connect(cl, userdata, flags, rc, props=None):
        if rc.is_failure:
            refused.append(str(rc))
        elif on_connect is not None:
            on_connect(cl)
        done.set()

    c.on_connect = _on_connect
    if on_message is not None:
        c.on_message = on_message
    try:
        c.connect(host, port, keepalive=keepalive)
    except Exception as e:  # socket, DNS and TLS handshake errors alike
        raise LinkError("cannot connect to broker %s:%d: %s" % (host, port, describe(e)))
    c.loop_start()
    if not done.wait(timeout) or refused:
        c.loop_stop()
        try:
            c.disconnect()
        except Exception:
            pass
        if refused:
            raise LinkError("broker %s:%d refused the connection: %s" % (host, port, refused[0]))
        raise LinkError("no answer from broker %s:%d within %g s" % (host, port, timeout))
    return c


def close(c):
    """Disconnect cleanly (queued publishes go first) and stop the loop."""
    try:
        c.disconnect()
    finally:
        c.loop_stop()
