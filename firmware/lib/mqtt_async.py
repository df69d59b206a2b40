# Small asyncio MQTT 3.1.1 client shared by MicroPython and CPython.
#
# Why not umqtt.simple: it blocks (connect, QoS 1 publish), turns its socket
# blocking for good after the first wait_msg/check_msg, and sends no keepalive
# pings. Why not mqtt_as: it owns the Wi-Fi interface and cannot run over PPP.
# Here every wait is an asyncio wait with a bound, so the event loop is never
# held by the uplink (see docs/mqtt.md for the measured latencies). The one
# exception is DNS: getaddrinfo blocks on both runtimes, so the address is
# resolved in connect(), cached, and refreshed only after a failed connect; an
# IP literal costs nothing.
#
# Layout: the packets are in mqtt_codec.py (coders, Framer); here TLS set-up
# and MQTTClient.
#
# Length: the client is one state machine (connect, reader, keepalive, QoS 1
# window, subscriptions) over one socket, kept in one file so its invariants
# read in one place.
#
# The client never retries on its own: connect() returns 0 or an error code,
# a dead link is dropped and reported (is_connected() False, on_disconnect),
# and the caller decides when to connect again.
import sys

import asyncio
try:
    from micropython import const
except ImportError:

    def const(x):
        return x


from clock import ticks_diff, ticks_ms
from mqtt_codec import (  # noqa: F401 - the client's packets; re-exported for its users
    CONNACK, CONNECT, DISCONNECT, ERR_DNS, ERR_NET, ERR_PROTO, ERR_TIMEOUT, Framer, PINGREQ,
    PINGRESP, PUBACK, PUBLISH, SUBACK, SUBSCRIBE, UNSUBACK, _b, _enc_fixed, _fits, dec_publish,
    dec_rl, enc_connect, enc_puback, enc_publish, enc_publish_head, enc_rl, enc_subscribe, err_text,
    rl_size,
)


_MP = sys.implementation.name == "micropython"

# Defaults and maxima (each buffer/queue bounded; what does not fit is counted)
_DEF_MAX_INFLIGHT = const(8)  # QoS 1 messages awaiting PUBACK
_DEF_TX_BUF = const(2048)  # largest packet we send (HA discovery config ~700 B)
_DEF_RX_BUF = const(512)  # largest packet we accept; bigger ones are skipped
_MAX_SUBS = const(4)  # remembered subscriptions, re-sent on every connect
_DONE_RING = const(16)  # recent PUBACK outcomes, for wait_puback after the fact
_MAX_ACKS = const(24)  # PUBACKs we owe for QoS 1 messages of one read; more are counted
# (Mosquitto sends a client at most 20 unacknowledged QoS 1 messages, its
# max_inflight_messages default: one read never owes more than that)
_POLL_MS = const(10)  # poll step of the few waits that poll (slot, puback)
# A QoS 0 payload larger than the tx buffer (an HA discovery config of an enum
# with ~50 texts, ~3 KB) is written after its header instead of copied into
# the buffer: the caller holds it anyway, so no extra RAM. Bigger is refused.
_MAX_STREAMED = const(8192)


def pem_to_der(pem):
    """First certificate of a PEM text (str or bytes) as DER bytes; DER input
    is returned unchanged."""
    if isinstance(pem, (bytes, bytearray)):
        if b"-----BEGIN" not in pem:
            return bytes(pem)
        pem = pem.decode()
    import binascii

    body = []
    inside = False
    for line in pem.split("\n"):
        line = line.strip()
        if line.startswith("-----BEGIN"):
            inside = True
        elif line.startswith("-----END"):
            break
        elif inside and line:
            body.append(line)
    return binascii.a2b_base64("".join(body))


tls_error = ""  # why the last make_tls_context() could not load its CA


def make_tls_context(ca=None):
    """Client SSLContext for either runtime. ca: CA certificate as PEM text or
    DER bytes; the server certificate is checked only when it is given
    (without it the link is encrypted but not authenticated). A CA that does
    not load never raises: it fails closed (the context requires a
    certificate and trusts none, so every connect fails) and tls_error says
    why."""
    global tls_error
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls_error = ""
    if ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            if _MP:
                ca = pem_to_der(ca)  # mbedtls here takes DER (PEM fails: no NUL end)
            ctx.load_verify_locations(cadata=ca)
        except Exception as e:  # noqa: BLE001 - ValueError (MicroPython), SSLError, binascii.Error
            tls_error = "CA not loaded: %r" % (e,)
    else:
        if not _MP:
            ctx.check_hostname = False  # type: ignore[attr-defined]  # CPython's ssl only
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---------------------------------------------------------------- client
class MQTTClient:
    """asyncio MQTT 3.1.1 client. Method names follow umqtt.simple where they
    mean the same (connect, publish, subscribe, disconnect, set_callback,
    set_last_will), but all network methods are coroutines with bounded waits
    and none raises on network trouble: they return a code or None."""

    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=60,
                 ssl=None, server_hostname=None, max_inflight=_DEF_MAX_INFLIGHT,
                 tx_buf=_DEF_TX_BUF, rx_buf=_DEF_RX_BUF, connect_timeout_ms=10000,
                 ack_timeout_ms=10000, tx_timeout_ms=5000, avail_topic=None):
        self.client_id = client_id
        self.server = server
        self.port = port or (8883 if ssl else 1883)
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.server_hostname = server_hostname or server
        self.connect_timeout_ms = connect_timeout_ms
        self.ack_timeout_ms = ack_timeout_ms
        self.tx_timeout_ms = tx_timeout_ms
        self.cb = None
        self.on_puback = None  # on_puback(pid, ok): ok False = timed out / link dropped
        self.on_disconnect = None  # on_disconnect(reason)
        self.lw = None
        self.avail_topic = avail_topic
        if avail_topic:
            self.set_last_will(avail_topic, b"offline", retain=True, qos=1)
        self._tx = bytearray(tx_buf)
        self._txmv = memoryview(self._tx)
        self._framer = Framer(rx_buf)
        self._framer.on_skip = self._owe_ack
        self._rd = bytearray(128)  # MicroPython reads into this (no allocation)
        self._rdmv = memoryview(self._rd)
        # in-flight window: parallel preallocated arrays, pid 0 = free slot
        self.max_inflight = max_inflight
        self._ifl_pid = [0] * max_inflight
        self._ifl_t = [0] * max_inflight
        self._done_pid = [0] * _DONE_RING
        self._done_ok = bytearray(_DONE_RING)
        self._done_i = 0
        self._subs = []  # [(topic, qos)] at most _MAX_SUBS
        self._suback = {}  # pid -> granted qos, for subscribe() waiting
        self._pid = 0
        self._connack = -1
        self._acks = [0] * _MAX_ACKS
        self._nacks = 0
        self.ack_dropped = 0
        self._addr = None  # cached getaddrinfo entry
        # resolver: async callable name -> IPv4 text or None, used instead of
        # the blocking getaddrinfo when set (the ESP32 platform sets it while
        # the link is PPP: lib/dns_query.py)
        self.resolver = None
        self._sock = None
        self._r = None
        self._w = None
        self._lock = asyncio.Lock()
        self._connected = False
        self._connecting = False
        self._rx_task = None
        self._tick_task = None
        self._last_rx = 0
        self._last_tx = 0
        self._ping_out = False
        self.last_error = ""
        # counters (never reset; the caller diffs them)
        self.connects = 0
        self.conn_failures = 0
        self.disconnects = 0
        self.publishes = 0
        self.pubacks = 0
        self.timeouts = 0  # QoS 1 messages not acknowledged in ack_timeout_ms
        self.window_full = 0  # QoS 1 publishes refused: window stayed full
        self.too_big = 0  # publishes refused: larger than the tx buffer
        self.not_connected = 0  # publishes refused: no link
        self.received = 0  # PUBLISH packets received
        self.pings = 0
        self.bytes_sent = 0
        self.bytes_recv = 0
        self.dns_lookups = 0
        self.dns_ms_last = 0
        self.dns_ms_max = 0

    # -- configuration (umqtt.simple names)
    def set_callback(self, cb):
        """cb(topic_bytes, msg_bytes) for every PUBLISH received. It runs inside
        the receive task: keep it short and never await there; to answer a
        command, hand it to another task (an exception in cb is caught and
        kept in last_error)."""
        self.cb = cb

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.lw = (_b(topic), _b(msg), retain, qos)

    def is_connected(self):
        return self._connected

    def inflight(self):
        return self.max_inflight - self._ifl_pid.count(0)

    def counters(self):
        return {
            "connects": self.connects, "conn_failures": self.conn_failures,
            "disconnects": self.disconnects, "publishes": self.publishes,
            "pubacks": self.pubacks, "timeouts": self.timeouts,
            "window_full": self.window_full, "too_big": self.too_big,
            "not_connected": self.not_connected, "received": self.received,
            "rx_dropped": self._framer.dropped, "rx_unacked": self._framer.unacked + self.ack_dropped,
            "pings": self.pings,
            "bytes_sent": self.bytes_sent, "bytes_recv": self.bytes_recv,
            "dns_lookups": self.dns_lookups, "dns_ms_max": self.dns_ms_max,
        }

    # -- connection
    def _resolve(self):
        # Blocking on both runtimes (no asynchronous getaddrinfo on MicroPython):
        # called only from connect(), result cached until a connect fails.
        if self._addr is None:
            import socket

            t0 = ticks_ms()
            self.dns_lookups += 1
            try:
                ai = socket.getaddrinfo(self.server, self.port, 0, socket.SOCK_STREAM)
                self._addr = ai[0] if ai else None
            except Exception as e:  # noqa: BLE001 - OSError, or gaierror on CPython
                self.last_error = "dns: %r" % (e,)
                self._addr = None
            dt = ticks_diff(ticks_ms(), t0)
            self.dns_ms_last = dt
            if dt > self.dns_ms_max:
                self.dns_ms_max = dt
        return self._addr

    async def _open(self, ai):
        if not _MP:
            # CPython closes the socket itself when this is cancelled
            self._r, self._w = await asyncio.open_connection(
                ai[4][0], ai[4][1], ssl=self.ssl,
                server_hostname=self.server_hostname if self.ssl else None)
            return
        # MicroPython: own the socket so a timed-out connect can close it (the
        # stock open_connection would leak it) and so DNS is ours, not its.
        import errno
        import socket

        s = socket.socket(ai[0], socket.SOCK_STREAM)
        self._sock = s
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            # not a literal 115: lwIP on the ESP32 numbers EINPROGRESS 119
            if e.errno != errno.EINPROGRESS:
                raise
        if self.ssl:
            s = self.ssl.wrap_socket(s, server_hostname=self.server_hostname,
                                     do_handshake_on_connect=False)
            s.setblocking(False)
            self._sock = s
        self._r = self._w = asyncio.StreamReader(s)

    def _close_sock(self):
        w = self._w
        s = self._sock
        self._r = self._w = None
        self._sock = None
        try:
            if _MP:
                # MicroPython's Stream.close() does nothing (wait_closed()
                # closes): close the socket we own, or the broker never sees
                # the link go and the fd leaks
                if s is not None:
                    s.close()
            elif w is not None:
                w.close()
        except Exception:  # noqa: BLE001 - closing a dead socket
            pass

    async def connect(self, clean_session=True):
        """Open the link, send CONNECT, wait for CONNACK, start the receive and
        keepalive tasks, re-subscribe, publish "online" to avail_topic.
        Returns 0 on success, a CONNACK code 1..5, or ERR_* (< 0). Bounded by
        connect_timeout_ms (plus the DNS lookup when the address is not cached).
        One connect at a time: a second call while one runs gets ERR_PROTO."""
        if self._connecting:
            self.last_error = "connect already in progress"
            return ERR_PROTO
        if self._connected:
            self._drop("reconnect")
        if self.resolver is not None and self._addr is None:
            t0 = ticks_ms()
            self.dns_lookups += 1
            ip = await self.resolver(self.server)
            self.dns_ms_last = ticks_diff(ticks_ms(), t0)
            if ip is not None:
                import socket

                addr = (ip, self.port)  # what the ESP32 (and CPython) take
                if _MP and sys.platform == "linux":
                    # the unix port (the simulator) takes only raw sockaddrs;
                    # for an IP literal getaddrinfo just converts it
                    addr = socket.getaddrinfo(ip, self.port)[0][-1]
                self._addr = (socket.AF_INET, socket.SOCK_STREAM, 0, "", addr)
            else:
                self.last_error = "dns: no answer for %s" % self.server
        ai = self._resolve()
        if ai is None:
            self.conn_failures += 1
            return ERR_DNS
        self._connecting = True
        rc = ERR_NET
        try:
            rc = await self._connect2(ai, clean_session, ticks_ms())
        finally:
            self._connecting = False
            if rc:
                self._close_sock()  # also when the caller cancelled us
        if rc:
            self.conn_failures += 1
            self._addr = None  # resolve again next time
            return rc
        self.connects += 1
        self._connected = True
        now = ticks_ms()
        self._last_rx = self._last_tx = now
        self._ping_out = False
        self._rx_task = asyncio.create_task(self._rx_loop())
        self._tick_task = asyncio.create_task(self._tick_loop())
        for topic, qos in self._subs:
            await self._send_sub(topic, qos)
        if self.avail_topic:
            await self.publish(self.avail_topic, b"online", retain=True, qos=1)
        return 0 if self._connected else ERR_NET

    def _left_s(self, t0):
        left = self.connect_timeout_ms - ticks_diff(ticks_ms(), t0)
        return (left if left > 1 else 1) / 1000

    async def _connect2(self, ai, clean, t0):
        self._framer.reset()
        try:
            await asyncio.wait_for(self._open(ai), self._left_s(t0))
            lw = self.lw or (None, None, False, 0)
            n = enc_connect(self._tx, self.client_id, self.keepalive, clean, self.user,
                            self.password, lw[0], lw[1], lw[2], lw[3])
            if not n:
                self.last_error = "connect packet too big"
                return ERR_PROTO
            self._write(n)
            await asyncio.wait_for(self._w.drain(), self._left_s(t0))
            self._connack = -1
            while self._connack < 0:
                data = await asyncio.wait_for(self._read(), self._left_s(t0))
                if not data:
                    self.last_error = "closed by broker"
                    return ERR_NET
                if not self._framer.feed(data, self._on_packet_connecting):
                    self.last_error = "malformed packet"
                    return ERR_PROTO
        except asyncio.TimeoutError:
            self.last_error = "connect timeout"
            return ERR_TIMEOUT
        except Exception as e:  # noqa: BLE001 - OSError, ssl errors
            self.last_error = "connect: " + err_text(e)
            return ERR_NET
        if self._connack:
            self.last_error = "connack rc %d" % self._connack
        return self._connack

    def _on_packet_connecting(self, first, body):
        if first == CONNACK and len(body) >= 2:
            self._connack = body[1]
        elif self._connack >= 0:
            self._on_packet(first, body)  # arrived in the same read as CONNACK

    def _write(self, n):
        data = self._txmv[:n] if _MP else bytes(self._txmv[:n])
        self._w.write(data)
        self.bytes_sent += n
        self._last_tx = ticks_ms()

    async def _read(self):
        if _MP:
            while True:
                n = await self._r.readinto(self._rd)
                if n is not None:
                    break
                # None: a TLS socket was readable but holds no complete record
                # yet; wait again (0 is the real end of stream)
            if not n:
                return b""
            self.bytes_recv += n
            return self._rdmv[:n]
        data = await self._r.read(len(self._rd))
        self.bytes_recv += len(data)
        return data

    async def _send(self, build, *args, tail=None):
        """Build a packet into the tx buffer and send it (then the pieces of
        `tail`, the rest of the packet, if given), under the lock so two tasks never share the
        buffer. Returns True if written and drained."""
        if not self._connected:
            return False
        await self._lock.acquire()
        try:
            if not self._connected:
                return False
            n = build(self._tx, *args)
            if not n:
                return False
            try:
                self._write(n)
                if tail is not None:
                    # piece by piece, each drained: the stream never gathers
                    # the whole payload in one buffer
                    await asyncio.wait_for(self._w.drain(), self.tx_timeout_ms / 1000)
                    for part in tail:
                        self._w.write(part)
                        self.bytes_sent += len(part)
                        await asyncio.wait_for(self._w.drain(), self.tx_timeout_ms / 1000)
                await asyncio.wait_for(self._w.drain(), self.tx_timeout_ms / 1000)
            except asyncio.TimeoutError:
                self._drop("tx stalled")
                return False
            except Exception as ex:  # noqa: BLE001 - OSError
                self._drop("tx: " + err_text(ex))
                return False
            return True
        finally:
            self._lock.release()

    def _drop(self, reason):
        """Forget the link: stop the tasks, close the socket, fail the in-flight
        window. Safe to call from any task, more than once."""
        if not self._connected:
            return
        self._connected = False
        self.disconnects += 1
        self.last_error = reason
        cur = asyncio.current_task()
        for t in (self._rx_task, self._tick_task):
            if t is not None and t is not cur:
                t.cancel()
        self._rx_task = self._tick_task = None
        self._close_sock()
        for i in range(self.max_inflight):
            if self._ifl_pid[i]:
                self._finish(i, False)
        if self.on_disconnect:
            self.on_disconnect(reason)

    async def disconnect(self):
        """Clean shutdown: "offline" to avail_topic (a clean DISCONNECT
        suppresses the will), then DISCONNECT and close."""
        if not self._connected:
            return
        if self.avail_topic:
            await self.publish(self.avail_topic, b"offline", retain=True, qos=0)
        await self._send(_enc_fixed, DISCONNECT)
        self._drop("disconnect")

    async def ping(self):
        """Send a PINGREQ now (the keepalive task also does this by itself).
        True if written; the PINGRESP only resets the dead-link timer."""
        if not self._connected:
            return False
        self._ping_out = True
        self.pings += 1
        return await self._send(_enc_fixed, PINGREQ)

    # -- publish / subscribe
    def _next_pid(self):
        pid = self._pid + 1
        while True:
            if pid > 65535:
                pid = 1
            if pid not in self._ifl_pid and pid not in self._suback:
                self._pid = pid
                return pid
            pid += 1

    def _finish(self, i, ok):
        pid = self._ifl_pid[i]
        self._ifl_pid[i] = 0
        self._done_pid[self._done_i] = pid
        self._done_ok[self._done_i] = 1 if ok else 0
        self._done_i = (self._done_i + 1) % _DONE_RING
        if ok:
            self.pubacks += 1
        else:
            self.timeouts += 1
        if self.on_puback:
            self.on_puback(pid, ok)

    def in_flight(self, pid):
        """True while QoS 1 message pid waits for its PUBACK."""
        return pid in self._ifl_pid

    async def publish(self, topic, msg, retain=False, qos=0, pid_cb=None):
        """Send one message (msg: bytes/str, or for QoS 0 a tuple of byte
        strings sent as one payload, up to _MAX_STREAMED). Returns 0 for QoS 0, the packet id (1..65535) for
        QoS 1 (see on_puback / wait_puback), or None if it was not sent (not
        connected, larger than the tx buffer, or the in-flight window stayed
        full for ack_timeout_ms). pid_cb(pid), for QoS 1, is called with the
        packet id before a byte is written: the PUBACK may be handled before
        publish() returns, and the caller must know the id by then."""
        if not self._connected:
            self.not_connected += 1
            return None
        qos = 1 if qos else 0
        topic = _b(topic)
        if type(msg) is tuple:  # pieces of one payload, written one by one
            n = 0
            for part in msg:
                n += len(part)
            if qos or n > _MAX_STREAMED:
                self.too_big += 1
                return None
            if await self._send(enc_publish_head, topic, n, retain, tail=msg):
                self.publishes += 1
                return 0
            if not self._connected:
                self.not_connected += 1
            return None
        msg = _b(msg)
        slot = -1
        if qos:
            t0 = ticks_ms()
            while True:
                if not self._connected:
                    self.not_connected += 1
                    return None
                try:
                    slot = self._ifl_pid.index(0)
                    break
                except ValueError:
                    pass
                if ticks_diff(ticks_ms(), t0) >= self.ack_timeout_ms:
                    self.window_full += 1
                    return None
                await asyncio.sleep(_POLL_MS / 1000)
            pid = self._next_pid()
            self._ifl_pid[slot] = pid
            self._ifl_t[slot] = ticks_ms()
        else:
            pid = 0
        rl = 2 + len(topic) + len(msg) + 2 * qos
        if not qos and not _fits(self._tx, rl) and len(msg) <= _MAX_STREAMED:
            if await self._send(enc_publish_head, topic, len(msg), retain, tail=(msg,)):
                self.publishes += 1
                return 0
            if not self._connected:
                self.not_connected += 1
            return None
        if not _fits(self._tx, rl):
            self.too_big += 1
            if qos:
                self._ifl_pid[slot] = 0
            return None
        if qos and pid_cb is not None:
            pid_cb(pid)
        ok = await self._send(enc_publish, topic, msg, qos, retain, pid)
        if not ok:
            if qos and self._ifl_pid[slot] == pid:
                self._ifl_pid[slot] = 0
            if self._connected:
                return None
            self.not_connected += 1
            return None
        self.publishes += 1
        return pid

    async def wait_puback(self, pid, timeout_ms=None):
        """True once pid is acknowledged; False if it timed out, the link
        dropped, or the outcome is older than the last 16 completions."""
        if not pid:
            return False
        t0 = ticks_ms()
        limit = self.ack_timeout_ms if timeout_ms is None else timeout_ms
        while pid in self._ifl_pid:
            if ticks_diff(ticks_ms(), t0) >= limit:
                return False
            await asyncio.sleep(_POLL_MS / 1000)
        for i in range(_DONE_RING):
            j = (self._done_i - 1 - i) % _DONE_RING
            if self._done_pid[j] == pid:
                return bool(self._done_ok[j])
        return False

    async def _send_sub(self, topic, qos):
        pid = self._next_pid()
        self._suback[pid] = -2  # waiting
        if not await self._send(enc_subscribe, pid, topic, qos):
            self._suback.pop(pid, None)
            return None
        t0 = ticks_ms()
        while self._suback.get(pid, -1) == -2 and self._connected:
            if ticks_diff(ticks_ms(), t0) >= self.ack_timeout_ms:
                break
            await asyncio.sleep(_POLL_MS / 1000)
        g = self._suback.pop(pid, -1)
        return -1 if g < 0 or g == 0x80 else g

    async def subscribe(self, topic, qos=0):
        """Subscribe now (if connected) and again after every connect. Returns
        the granted QoS (0/1), -1 if refused or unanswered, None if offline
        (then it only takes effect at the next connect)."""
        topic = _b(topic)
        qos = 1 if qos else 0
        if (topic, qos) not in self._subs:
            if len(self._subs) >= _MAX_SUBS:
                return -1
            self._subs.append((topic, qos))
        if not self._connected:
            return None
        return await self._send_sub(topic, qos)

    # -- background tasks
    def _owe_ack(self, pid):
        if self._nacks < _MAX_ACKS:
            self._acks[self._nacks] = pid
            self._nacks += 1
        else:
            self.ack_dropped += 1

    def _on_packet(self, first, body):
        t = first & 0xF0
        if t == PUBACK and len(body) >= 2:
            pid = (body[0] << 8) | body[1]
            for i in range(self.max_inflight):
                if self._ifl_pid[i] == pid:
                    self._finish(i, True)
                    break
        elif t == PINGRESP:
            self._ping_out = False
        elif t == PUBLISH:
            m = dec_publish(first, body)
            if m is None:
                self._framer.malformed += 1
                return
            self.received += 1
            if m[2]:
                self._owe_ack(m[4])
            if self.cb:
                try:
                    self.cb(m[0], m[1])
                except Exception as e:  # noqa: BLE001 - a callback bug must not kill the link
                    self.last_error = "callback: %r" % (e,)
        elif t == SUBACK and len(body) >= 3:
            pid = (body[0] << 8) | body[1]
            if pid in self._suback:
                self._suback[pid] = body[2]

    async def _rx_loop(self):
        try:
            while self._connected:
                data = await self._read()
                if not data:
                    self._drop("closed by broker")
                    return
                self._last_rx = ticks_ms()
                self._nacks = 0
                if not self._framer.feed(data, self._on_packet):
                    self._drop("malformed packet")
                    return
                for i in range(self._nacks):
                    await self._send(enc_puback, self._acks[i])
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - OSError from the socket
            self._drop("rx: " + err_text(e))

    async def _tick_loop(self):
        # Keepalive: PINGREQ when nothing was sent for `keepalive` seconds or
        # nothing received for `keepalive` seconds (a QoS 0-only publisher would
        # otherwise never notice a half-open link). Dead link: nothing received
        # for 1.5 x keepalive (so a PINGRESP had keepalive/2 to arrive).
        ka = self.keepalive * 1000
        step = ka // 8 if ka else 1000
        step = 50 if step < 50 else (500 if step > 500 else step)
        while self._connected:
            await asyncio.sleep(step / 1000)
            now = ticks_ms()
            for i in range(self.max_inflight):
                if self._ifl_pid[i] and ticks_diff(now, self._ifl_t[i]) >= self.ack_timeout_ms:
                    self._finish(i, False)
            if not ka:
                continue
            if ticks_diff(now, self._last_rx) >= ka * 3 // 2:
                self._drop("keepalive: no answer from broker")
                return
            if not self._ping_out and (ticks_diff(now, self._last_tx) >= ka or ticks_diff(now, self._last_rx) >= ka):
                self._ping_out = True
                self.pings += 1
                await self._send(_enc_fixed, PINGREQ)
