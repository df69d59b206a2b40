"""The demo site of `vegw sim` and the end-to-end tests: its devices (three
VE.Direct, two BLE with their keys), alarm rules and config, and a
simulated BLE device (BleDevice: its adverts, encrypted with its key)."""
import random

from . import ble_encode


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
