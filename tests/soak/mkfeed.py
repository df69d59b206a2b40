"""Makes the soak's input: 60 one-second chunks of each VE.Direct device
(house BMV-712, solar MPPT, inverter) and 256 encrypted BLE adverts."""
import sys

from vegw import ble_encode, vestream

KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


def make(path):
    out = bytearray()
    for model in ("bmv712", "mppt", "inverter"):
        d = vestream.make(model, seed=4)
        for _ in range(60):
            c = d.second()
            out += len(c).to_bytes(2, "little") + c
    # data counters 256 apart: cycling through the 256 adverts only ever steps
    # the 16-bit counter forward (the tracker refuses one that goes back)
    for i in range(256):
        adv = ble_encode.encode("battery_monitor", {"V": 12.2 + (i % 100) / 100, "I": -3.5, "SOC": 60 + i / 10,
                                                    "CE": -40.0, "TTG": 900, "AR": 0}, KEY, i * 256, model_id=0xA389)
        out += bytes((len(adv),)) + adv
    with open(path, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    make(sys.argv[1])
