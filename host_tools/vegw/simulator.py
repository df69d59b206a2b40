"""Simulated site for `vegw sim` and the end-to-end tests.

The firmware runs unmodified under the MicroPython unix port
(firmware/host_main.py with drivers/platform_host.py). This module plays the parts
that are hardware on a board: one TCP stream per VE.Direct device, paced at
19200 baud x speed (a generated device or a raw capture, looped), and a BLE
air of encrypted Instant Readout adverts. Everything listens on loopback.
"""
# Length: the simulated site's parts that share its loopback ports and
# processes (VE.Direct streams, BLE air, the firmware build and ROM image).
import json
import os
import pathlib
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from mpremote import romfs

from . import ROOT, ble_encode, vestream
from .runtime import SIM_HEAP, micropython_binary, parse_heap

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


class BleDevice:
    def __init__(self, name, mac, record, key_hex, values_fn, model_id=None, rssi=-70):
        self.name = name
        self.mac = mac
        self.record = record
        self.key = bytes.fromhex(key_hex)
        self.key_hex = key_hex
        self.values_fn = values_fn
        self.model_id = model_id
        self.rssi = rssi
        self.counter = random.randint(0, 0xFFFF)
        self.t = 0

    def advert(self):
        self.t += 1
        self.counter = (self.counter + 1) & 0xFFFF
        return ble_encode.encode(self.record, self.values_fn(self.t), self.key, self.counter,
                                 model_id=self.model_id)


def battery_monitor_values(seed=1):
    """A SmartShunt-like values function for a BLE device of a user config:
    a slow voltage ramp, a noisy discharge current; values at the BLE
    record's resolution."""
    rng = random.Random(seed)

    def values(t):
        return {"V": round(12.9 + 0.2 * ((t % 60) / 60.0), 2), "I": round(-4.2 + rng.uniform(-0.5, 0.5), 3),
                "CE": -23.4, "SOC": 87.5, "TTG": 1440, "AR": 0, "T": 21.5}

    return values


def demo_ble_devices(seed=5):
    rng = random.Random(seed)

    def shunt(t):
        return {"V": round(12.9 + 0.2 * ((t % 60) / 60.0), 2), "I": round(-4.2 + rng.uniform(-0.5, 0.5), 3),
                "CE": -23.4, "SOC": 87.5, "TTG": 1440, "AR": 0, "T": 21.5}

    def orion(t):
        return {"CS": 3, "ERR": 0, "V": 13.62, "I": 12.3, "DC_IN_V": 12.81, "DC_IN_I": 13.9, "OR": 0}

    return [
        BleDevice("shunt", "C0:DE:00:00:00:01", "battery_monitor", "%032x" % rng.getrandbits(128), shunt, 0xA389),
        BleDevice("orion", "C0:DE:00:00:00:02", "orion_xs", "%032x" % rng.getrandbits(128), orion, 0xA3F0),
    ]


DEMO_VEDIRECT = (("house", "bmv712"), ("solar", "mppt"), ("inverter", "inverter"))
DEMO_RULES = (  # kept when the device they read is configured
    "low_soc: warning: house.SOC < 30 for 2m clear 35",
    "pump_running: alarm: house.P < -1000 for 10m",
    "mppt_error: alarm: solar.ERR != 0",
)


def demo_config(gateway, host, port, ble_devices, vedirect_names=None, heartbeat=60, log_interval=60, rules=None):
    devices = []
    # an ESP32 has two UARTs for data: the first device gets UART1 alone, the
    # others share UART2 (time-sliced RX pins, like a board with 3 devices)
    for i, name in enumerate(vedirect_names if vedirect_names is not None else [n for n, _ in DEMO_VEDIRECT]):
        devices.append({"name": name, "type": "vedirect", "uart": 1 if i == 0 else 2, "rx": (16, 4, 13, 14, 27)[i % 5],
                        "tx": 17 if i == 0 else (None if i > 1 else 5)})
    for d in ble_devices:
        devices.append({"name": d.name, "type": "ble", "mac": d.mac, "key": d.key_hex})
    return {
        "gateway": {"id": gateway},
        # the simulator reports changes at once (min_interval 1 s); a cellular
        # site would use 60 s to stay near 1 MB a day (README, docs/mqtt.md)
        "mqtt": {"host": host, "port": port, "heartbeat": heartbeat, "min_interval": 1, "status_interval": 60,
                 "discovery": True},
        "devices": devices,
        "alarms": {"rules": rules if rules is not None else [
            r for r in DEMO_RULES if r.split(":")[2].strip().split(".")[0] in [d["name"] for d in devices]]},
        "log": {"interval": log_interval},
    }


def build_mpy(out_dir=None):
    """Compile the firmware with mpy-cross into build/sim/ (what a board runs:
    bytecode, no on-device compile), reusing files whose source is older."""
    out = pathlib.Path(out_dir or (ROOT / "build" / "sim"))
    fw = ROOT / "firmware"
    cross = os.path.join(os.path.dirname(micropython_binary()), "mpy-cross")
    # the device's layout: /app.mpy, /lib/*.mpy, /drivers/*.mpy
    jobs = [(fw / "app.py", out / "app.mpy"), (fw / "startup.py", out / "startup.mpy"),
            (fw / "host_main.py", out / "host_main.mpy"), (fw / "host_boot.py", out / "host_boot.mpy")]
    jobs += [(p, out / "lib" / (p.stem + ".mpy")) for p in sorted((fw / "lib").glob("*.py"))]
    jobs += [(p, out / "drivers" / (p.stem + ".mpy")) for p in sorted((fw / "drivers").glob("*.py"))]
    (out / "drivers").mkdir(parents=True, exist_ok=True)
    (out / "lib").mkdir(parents=True, exist_ok=True)
    for src, dst in jobs:
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        # -O3: no line numbers or asserts in the bytecode (less RAM, as deploy does).
        # Written beside and renamed: parallel test workers may build at once.
        tmp = "%s.%d.tmp" % (dst, os.getpid())
        # -s: the module's name as its source name: a traceback still names
        # the module, and the name is one the import interns anyway (a path
        # or "x.py" would be one more interned string in RAM per module; on
        # a board the frozen modules' names are in flash)
        # -march=host: the parser kernel (vedirect_kernel.py) is viper machine code
        subprocess.run([cross, "-O3", "-march=host", "-s", src.stem, "-o", tmp, str(src)], check=True,
                       cwd=str(src.parent))
        os.replace(tmp, str(dst))
    return out


def build_rom(build=None):
    """The firmware's ROMFS image (build/sim.rom): the device layout of
    build_mpy() except host_boot.mpy, which mounts it. On a board the modules
    are in flash (frozen, or a ROMFS partition); the simulator gives them the
    same place (host_boot.py)."""
    build = pathlib.Path(build or build_mpy())
    rom = build.parent / (build.name + ".rom")
    files = sorted(p for p in build.rglob("*.mpy") if p.name != "host_boot.mpy")
    if rom.exists() and all(p.stat().st_mtime <= rom.stat().st_mtime for p in files):
        return rom
    w = romfs.VfsRomWriter()

    def add(folder):
        for p in sorted(folder.iterdir()):
            if p.is_dir():
                w.opendir(p.name)
                add(p)
                w.closedir()
            elif p.suffix == ".mpy" and p.name != "host_boot.mpy":
                w.mkfile(p.name, p.read_bytes())

    add(build)
    tmp = "%s.%d.tmp" % (rom, os.getpid())
    with open(tmp, "wb") as f:
        f.write(w.finalise())
    os.replace(tmp, str(rom))
    return rom


# The unix port interns every module's names (qstrs) in RAM when it loads
# their .mpy files from the ROM image; a board build freezes the modules and
# keeps those names in flash. Since December 2026 the demo's names fill a
# seventh qstr pool (~15 KB on the 64-bit port, micropython.qstr_info()):
# that much is added to the heap and counted as flash, like the image.
FLASH_NAMES = 16 * 1024


def heap_with_rom(spec, rom_bytes):
    """-X heapsize for an object heap of `spec` ("111wK", "4M", ...) plus
    the ROM image's block and the allocation tables that block needs, plus
    FLASH_NAMES."""
    return parse_heap(spec) + rom_bytes + rom_bytes // 80 + FLASH_NAMES


def rom_mount_source():
    """The lines of firmware/host_boot.py that mount the ROM image (up to its
    first firmware import), as source: a probe that runs them first loads
    the firmware exactly as `vegw sim` does (tests/host/test_ram_budget.py,
    bench/bench_ondemand.py). Run with `--rom <image>` in sys.argv."""
    text = (ROOT / "firmware" / "host_boot.py").read_text()
    head = text[: text.index("from drivers import platform_host")]
    if "vfs.mount(" not in head:
        raise RuntimeError("host_boot.py no longer mounts the ROM image before its first import")
    return head


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
