# Host platform for the MicroPython unix port: what `vegw sim` runs the real
# firmware on. Only the radio and the pins are simulated:
#   VE.Direct UART  -> TCP client to the simulator's serial stream (19200 baud x speed)
#   BLE radio       -> ble_host.FakeBLE fed with adverts from the simulator
#   NOR flash       -> nor_sim.NorSim backed by a file (power cuts survive restarts)
#   network link    -> the host's loopback (always up)
#   RTC             -> 2000-01-01 at power-on, as a board's, until SNTP from
#                      the simulator (--ntp) sets it; kept over a reset (the
#                      file "rtc" in the device's directory), as the ESP32's
#                      RTC keeps counting over machine.reset()
import asyncio
import socket
import sys
import time

ROM_BYTES = 0  # heap block of the firmware's ROM image (host_boot.py): flash on a board
_GAP_MS = 500  # silence that resets a half-received VE.Direct block
_POLL_MS = 20  # UART poll period (the board's driver polls the same way)
_UNIX_2000 = 946684800  # where an unset ESP32 RTC starts


def _arg(name, default=None, many=False):
    out = []
    argv = sys.argv
    i = 0
    while i < len(argv):
        if argv[i] == name and i + 1 < len(argv):
            out.append(argv[i + 1])
            i += 2
            continue
        i += 1
    if many:
        return out
    return out[-1] if out else default


def _hostport(text):
    h, p = text.rsplit(":", 1)
    return h, int(p)


class TcpSerial:
    """A VE.Direct port served by the simulator over TCP, polled like the
    board's UART (non-blocking read + short sleep, no stream cancellation)."""

    def __init__(self, host, port):
        self.addr = socket.getaddrinfo(host, port)[0][-1]
        self.sock = None
        self.idle_ms = 0

    async def read_into(self, buf):
        if self.sock is None:
            s = socket.socket()
            try:
                s.connect(self.addr)
            except OSError:
                s.close()
                await asyncio.sleep(1)
                return None
            s.setblocking(False)
            self.sock = s
        try:
            n = self.sock.readinto(buf)
        except OSError:
            n = None  # EAGAIN: nothing yet
        if n == 0:  # simulator closed the stream
            self.sock.close()
            self.sock = None
            return None
        if n:
            self.idle_ms = 0
            return n
        await asyncio.sleep_ms(_POLL_MS)
        self.idle_ms += _POLL_MS
        if self.idle_ms >= _GAP_MS:
            self.idle_ms = 0
            return None
        return 0


class SharedTcp:
    """Host twin of a time-sliced UART: one simulated device per pin; only
    the selected one is heard (what the others send meanwhile is lost, as on
    the board)."""

    def __init__(self, ports):
        self.ports = ports
        self.cur = 0

    def select(self, i):
        self.cur = i
        p = self.ports[i]
        if p.sock is not None:
            junk = bytearray(512)
            try:
                while p.sock.readinto(junk):
                    pass
            except OSError:
                pass

    async def read_into(self, buf):
        return await self.ports[self.cur].read_into(buf)


class HostRelay:
    def __init__(self):
        self.on = False

    def set(self, on):
        if on != self.on:
            self.on = on
            print("vegw: relay", "on" if on else "off")


class Platform:
    def __init__(self):
        self.config_path = _arg("--config", "config.json")
        self.flash_path = _arg("--flash")
        self.flash_blocks = int(_arg("--flash-blocks", "384"))  # 1.5 MB
        self.vedirect = {}
        for spec in _arg("--vedirect", many=True):
            name, addr = spec.split("=", 1)
            self.vedirect[name] = _hostport(addr)
        self.ble_addr = _arg("--ble")
        self.healthy_after = _arg("--healthy-after")  # OTA health report delay (tests)
        self.config_health_ms = int(_arg("--config-health-ms", "0")) or None  # a pushed config's health timeout (tests)
        self._relay = HostRelay()
        self._store = None
        self.watchdog_feeds = 0
        self._net_ok = True
        self.ntp = _arg("--ntp")  # the simulator's SNTP server, host:port
        # --link cell: the board's cellular case. Names are resolved by the
        # firmware's own non-blocking DNS query to the "PPP peer's" server
        # (--dns host:port), as on the board where getaddrinfo would block
        # the scheduler that feeds PPP (issue 17.2); never by the host.
        self.link = _arg("--link", "host")
        self.dns = _arg("--dns")
        self.clock_retry_ms = int(_arg("--clock-retry-ms", "300000"))  # asking again while unset
        self._rtc_off = None  # seconds added to the host's clock; None: unset
        self._clock_src = None
        try:
            with open("rtc") as f:
                self._rtc_off = float(f.read())
            self._clock_src = "rtc"
        except (OSError, ValueError):
            pass
        self._boot_t = time.time()

    @property
    def rom_bytes(self):
        return ROM_BYTES

    # config
    def read_config(self):
        with open(self.config_path) as f:
            return f.read()

    def board(self):
        return None  # pins are not checked on the host

    # time
    def now_s(self):
        if self._rtc_off is None:  # power-on: 2000-01-01 plus the uptime
            return _UNIX_2000 + time.time() - self._boot_t
        return time.time() + self._rtc_off

    def clock_state(self):
        return self._clock_src or "unset"

    async def sync_clock(self):
        """SNTP from the simulator's server (lib/sntp.py, as on Wi-Fi)."""
        if not self.ntp:
            return None
        import sntp

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t = await sntp.query(s, socket.getaddrinfo(*_hostport(self.ntp))[0][-1])
        except OSError:
            t = None
        finally:
            s.close()
        if t is None:
            return None
        self._rtc_off = t - time.time()
        self._clock_src = "ntp"
        try:
            with open("rtc", "w") as f:
                f.write(repr(self._rtc_off))
        except OSError:
            pass
        return "ntp"

    # devices
    def open_vedirect(self, dev):
        addr = self.vedirect.get(dev["name"])
        if addr is None:
            return _Silent()
        return TcpSerial(addr[0], addr[1])

    def open_shared_uart(self, devs):
        return SharedTcp([self.open_vedirect(d) for d in devs])

    def ble_scanner(self, cfg, on_advert):
        if not self.ble_addr:
            return None
        from drivers import ble_host
        from drivers import ble_scan

        fake = ble_host.FakeBLE()
        w, i = ble_scan.scan_config(cfg)
        scanner = ble_scan.Scanner(fake, on_advert, window_ms=w, interval_ms=i)
        asyncio.create_task(_ble_feed(fake, _hostport(self.ble_addr)))
        return scanner

    def block_device(self):
        if not self.flash_path:
            return None
        from drivers import nor_sim

        return nor_sim.NorSim(self.flash_blocks, path=self.flash_path)

    def relay(self):
        return self._relay

    def ota_fs(self):
        import osfs

        return osfs.OsFs()  # the working directory is the simulated device's filesystem

    def state_store(self):
        if self._store is None and self.flash_path:
            from drivers import state_store

            self._store = state_store.FileStore(self.flash_path + ".state")
        return self._store

    # network
    async def network_up(self):
        return self._net_ok

    def link_failed(self):
        pass

    def link_info(self):
        return {"link": self.link, "rssi_dbm": None}

    def resolver(self):
        if self.link != "cell" or not self.dns:
            return None  # the host's loopback: getaddrinfo is fine
        host, port = _hostport(self.dns)

        async def lookup(name):
            import dns_query

            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                return await dns_query.resolve(s, host, name, port=port)
            finally:
                s.close()

        return lookup

    def tls_context(self, m):
        import mqtt_async

        return mqtt_async.make_tls_context(m.get("ca"))

    # supervision
    def feed_watchdog(self):
        self.watchdog_feeds += 1

    def reset(self):
        print("vegw: reset")
        sys.exit(3)

    def command(self, msg, gw):
        gw.reply({"ok": False, "cmd": msg.get("cmd"), "error": "not available on this platform"})


class _Silent:
    async def read_into(self, buf):
        await asyncio.sleep(1)
        return 0


async def _ble_feed(fake, addr):
    """Adverts from the simulator, one per line: MAC-HEX MFR-HEX RSSI."""
    from drivers import ble_host
    from binascii import unhexlify

    last = time.ticks_ms()
    while True:
        try:
            r, w = await asyncio.open_connection(addr[0], addr[1])
        except OSError:
            await asyncio.sleep(1)
            continue
        while True:
            line = await r.readline()
            if not line:
                break
            try:
                mac_h, mfr_h, rssi = line.split()
                now = time.ticks_ms()
                fake.advance(time.ticks_diff(now, last))  # ends scan windows when due
                last = now
                fake.deliver(unhexlify(mac_h), ble_host.victron_adv(unhexlify(mfr_h)), int(rssi))
            except Exception:
                pass
        await asyncio.sleep(1)
