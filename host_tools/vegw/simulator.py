"""Simulated site for `vegw sim` and the end-to-end tests.

The firmware runs unmodified under the MicroPython unix port
(firmware/host_main.py with drivers/platform_host.py). This module plays the parts
that are hardware on a board: one TCP stream per VE.Direct device, paced at
19200 baud x speed (a generated device or a raw capture, looped), and a BLE
air of encrypted Instant Readout adverts. Everything listens on loopback.
"""
# The firmware image the simulated board runs is sim_image.py; the demo
# site's devices and config are sim_demo.py.
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from . import ROOT, ble_encode, vestream
from .runtime import SIM_HEAP, micropython_binary
from .sim_demo import DEMO_VEDIRECT, demo_ble_devices, demo_config
from .sim_image import FLASH_NAMES, build_mpy, build_rom, heap_with_rom

BAUD_BYTES_PER_S = 1920  # 19200 baud, 8N1
_RECORD_MAX = 1 << 20


def _listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    s.settimeout(0.5)
    return s


class _Server(threading.Thread):
    """One loopback TCP listener; serve(conn) talks to each client in turn
    until stop()."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = _listener()
        self.port = self.sock.getsockname()[1]
        self.stop_evt = threading.Event()

    def run(self):
        while not self.stop_evt.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                self.serve(conn)
            except OSError:
                pass  # the firmware hung up (reset, clean stop)
            finally:
                conn.close()

    def stop(self):
        self.stop_evt.set()
        self.sock.close()


class SerialFeed(_Server):
    """Serves one VE.Direct byte stream over TCP, paced like the wire."""

    def __init__(self, name, source, speed=1.0):
        super().__init__()
        self.name = name
        self.source = source  # callable -> next bytes (one second of traffic) | bytes (looped capture)
        self.speed = speed
        self.sent = 0
        self.record = bytearray()  # what went on the wire (kept up to _RECORD_MAX) for tests
        self.paused = False  # a silent device (cable pulled)
        self._gen = self._chunks()

    def _chunks(self):
        if callable(self.source):
            while True:
                yield self.source(), 1.0
        else:
            data = self.source
            step = max(1, int(BAUD_BYTES_PER_S / 10))
            while True:
                for i in range(0, len(data), step):
                    chunk = data[i:i + step]
                    yield chunk, len(chunk) / BAUD_BYTES_PER_S

    def serve(self, conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t_next = time.monotonic()
        while not self.stop_evt.is_set():
            data, seconds = next(self._gen)
            if not self.paused:
                conn.sendall(data)
                self.sent += len(data)
                if len(self.record) < _RECORD_MAX:
                    self.record += data
            t_next += seconds / self.speed
            delay = t_next - time.monotonic()
            if delay > 0:
                self.stop_evt.wait(delay)


class BleAir(_Server):
    """Sends every simulated BLE device's advert once per (1/speed) second."""

    def __init__(self, devices, speed=1.0):
        super().__init__()
        self.devices = devices  # list of BleDevice
        self.speed = speed

    def serve(self, conn):
        while not self.stop_evt.is_set():
            for d in self.devices:
                mfr = d.advert()
                line = "%s %s %d\n" % (d.mac.replace(":", ""), mfr.hex(), d.rssi)
                conn.sendall(line.encode())
            self.stop_evt.wait(1.0 / self.speed)


class FirmwareProcess:
    """The firmware under the MicroPython unix port with an ESP32's heap for
    its objects; its code is in a ROM image, as in flash on a board."""

    RESET = 3  # exit status of the firmware's reset on the host platform
    RESTART = 4  # config validated and cached (app.RESTART): boots again, not a reset

    def __init__(self, config, vedirect_ports, ble_port=None, flash_path=None, duration=None,
                 heap=None, workdir=None, stdout=None, healthy_after=None, ntp=True, config_health_s=None,
                 cellular=None):
        """ntp: serve the time to the board (its clock starts at 2000-01-01
        until it asks); False: a network where NTP never answers.
        cellular: {name: ip} -- the board is on its cellular link, and the
        names are answered by a DNS server of the simulator (the PPP peer's),
        the only way it resolves them there."""
        heap = heap or os.environ.get("VEGW_SIM_HEAP") or SIM_HEAP
        self.workdir = workdir or tempfile.mkdtemp(prefix="vegw-sim-")
        self.flash_path = flash_path or os.path.join(self.workdir, "flash.bin")
        # the simulated device's filesystem (OTA writes here; its files come
        # before the ROM image's, as /lib before frozen modules on a board),
        # config.json at its root as on a board (a config push replaces it)
        build = build_mpy()
        self.rom = str(build_rom(build))
        fs = os.path.join(self.workdir, "fs")
        if not os.path.isdir(fs):
            os.mkdir(fs)
            shutil.copy(str(build / "host_boot.mpy"), fs)
        self.fs = fs
        self.config_path = os.path.join(fs, "config.json")
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=1)
        self.heap = heap_with_rom(heap, os.path.getsize(self.rom))
        args = [micropython_binary(), "-X", "heapsize=%d" % self.heap, "-m", "host_boot", "--rom", self.rom,
                "--flash-names", str(FLASH_NAMES),
                "--config", self.config_path, "--flash", self.flash_path]
        for name, port in vedirect_ports.items():
            args += ["--vedirect", "%s=127.0.0.1:%d" % (name, port)]
        if ble_port:
            args += ["--ble", "127.0.0.1:%d" % ble_port]
        if duration:
            args += ["--duration", str(duration)]
        if healthy_after is not None:
            args += ["--healthy-after", str(healthy_after)]
        if config_health_s is not None:
            args += ["--config-health-ms", str(int(config_health_s * 1000))]
        self.dns = None
        if cellular is not None:
            from .dns_server import DnsServer

            self.dns = DnsServer(cellular)
            args += ["--link", "cell", "--dns", "127.0.0.1:%d" % self.dns.port]
        from .sntp_server import SntpServer

        self.ntp = SntpServer(answering=ntp)
        args += ["--ntp", "127.0.0.1:%d" % self.ntp.port, "--clock-retry-ms", "3000"]
        env = dict(os.environ)
        env["MICROPYPATH"] = ".frozen:%s:%s/lib" % (fs, fs)
        self._popen = dict(args=args, cwd=fs, env=env, stdout=stdout or subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        self.resets = 0
        self.output = []  # console text of earlier boots
        self.rc = None
        self._stopping = False
        self._ended = threading.Event()
        self.proc = subprocess.Popen(**self._popen)
        threading.Thread(target=self._supervise, daemon=True).start()

    def _supervise(self):
        # a board boots again by itself after a reset (OTA, reboot command,
        # a config just validated): so does the simulated one
        while True:
            rc = self.proc.wait()
            if rc not in (self.RESET, self.RESTART) or self._stopping:
                self.rc = rc
                self._ended.set()
                return
            self.resets += rc == self.RESET
            if self.proc.stdout is not None:
                self.output.append(self.proc.stdout.read())
            self.proc = subprocess.Popen(**self._popen)

    def wait(self, timeout=None):
        """The firmware's exit status once it has ended for good (resets boot
        it again). Raises subprocess.TimeoutExpired after timeout seconds."""
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self._popen["args"], timeout)
        return self.rc

    def kill(self):
        self._stopping = True
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._ended.wait(5)
        self.ntp.stop()
        if self.dns is not None:
            self.dns.stop()


class Site:
    """A simulated site: VE.Direct feeds, BLE air and the firmware process."""

    def __init__(self, gateway="sim1", broker=("127.0.0.1", 1883), vedirect=None, ble=True, speed=1.0,
                 config=None, duration=None, seed=1, log_interval=60, heartbeat=60, rules=None,
                 flash_path=None, stdout=None, healthy_after=None, ble_devices=None, workdir=None,
                 ota_key=None, ntp=True, config_health_s=None, cellular=None):
        """ble_devices: simulated BLE devices (default: the demo's when ble);
        workdir: the firmware's directory (default: a new temporary one);
        ota_key: the gateway's OTA key as hex (ota.key; None: OTA refused)."""
        self.feeds = {}
        if vedirect is None:  # the demo site
            for i, (name, model) in enumerate(DEMO_VEDIRECT):
                dev = vestream.make(model, seed=seed + i, serial="HQ%07d" % (2231000 + i + 100 * seed))
                self.feeds[name] = SerialFeed(name, dev.second, speed)
        else:
            for name, source in vedirect.items():
                self.feeds[name] = SerialFeed(name, source, speed)
        if ble_devices is not None:
            self.ble_devices = list(ble_devices)
        else:
            self.ble_devices = demo_ble_devices(seed + 4) if ble else []
        self.air = BleAir(self.ble_devices, speed) if self.ble_devices else None
        if config is None:
            config = demo_config(gateway, broker[0], broker[1], self.ble_devices, list(self.feeds),
                                 heartbeat=heartbeat, log_interval=log_interval, rules=rules)
        else:
            config = dict(config)
            config.setdefault("mqtt", {})
            config["mqtt"] = dict(config["mqtt"], host=broker[0], port=broker[1])
        if ota_key is not None:
            config = dict(config, ota={"key": ota_key})
        self.config = config
        for f in self.feeds.values():
            f.start()
        if self.air:
            self.air.start()
        self.fw = FirmwareProcess(config, {n: f.port for n, f in self.feeds.items()},
                                  self.air.port if self.air else None, flash_path=flash_path,
                                  duration=duration, stdout=stdout, healthy_after=healthy_after, workdir=workdir,
                                  ntp=ntp, config_health_s=config_health_s, cellular=cellular)

    def stop(self):
        self.fw.kill()
        for f in self.feeds.values():
            f.stop()
        if self.air:
            self.air.stop()
