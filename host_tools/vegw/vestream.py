"""Byte-exact VE.Direct text streams for simulated devices.

Used by tests, the simulator (`vegw sim`) and benchmarks. Each device model
evolves a plausible state once per second and renders the blocks the real
product sends (label sets and block splits as seen in real captures, see
../shared/reference/vedirect.md s.3), with the checksum byte computed per the
protocol and, where the product does it, asynchronous HEX frames glued after
the checksum byte.
"""
import math
import random

import vedirect_hex as vh


def block(fields):
    """Render (label, value) pairs as one text block with its checksum byte."""
    body = b"".join(b"\r\n" + lab.encode() + b"\t" + val.encode() for lab, val in fields)
    body += b"\r\nChecksum\t"
    return body + bytes(((256 - sum(body)) & 0xFF,))


def hex_async(register, value, width):
    return vh.register_frame(vh.CMD_ASYNC, register, int(value & ((1 << (8 * width)) - 1)).to_bytes(width, "little"))


def _onoff(b):
    return "ON" if b else "OFF"


class _Device:
    pid = 0
    name = "device"

    def __init__(self, seed=1, serial="HQ2231ABCDE"):
        self.rng = random.Random(seed)
        self.t = 0
        self.serial = serial

    def step(self):
        self.t += 1

    def second(self):
        """Bytes sent during one second (one or more blocks, HEX frames)."""
        self.step()
        return b"".join(self.blocks())

    def stream(self, seconds):
        return b"".join(self.second() for _ in range(seconds))


class BMV712(_Device):
    """BMV-712 Smart: main block + history block, alternating (C8 layout)."""

    pid = 0xA381
    name = "BMV-712 Smart"
    model_text = "712 Smart"
    has_relay = True
    has_mon = True
    aux = "VS"

    def __init__(self, seed=1, capacity_ah=200, **kw):
        super().__init__(seed, **kw)
        self.capacity = capacity_ah
        self.soc = 0.85
        self.v = 12.9
        self.ce_mah = -int((1 - self.soc) * capacity_ah * 1000)
        self.h6 = -2316635
        self.h = 0

    def step(self):
        super().step()
        day = (self.t % 86400) / 86400.0
        sun = max(0.0, math.sin(2 * math.pi * (day - 0.25)))
        self.i = round(sun * 25 - 6 + self.rng.uniform(-1, 1), 3)
        self.ce_mah = min(0, self.ce_mah + int(self.i * 1000 / 3600))
        self.soc = 1 + self.ce_mah / (self.capacity * 1000.0)
        self.v = 11.8 + 1.3 * self.soc + self.i * 0.01
        self.h6 += min(0, int(self.i * 1000 / 3600))

    def main_fields(self):
        v_mv = int(self.v * 1000)
        i_ma = int(self.i * 1000)
        f = [("PID", "0x%X" % self.pid), ("V", str(v_mv))]
        if self.aux == "VS":
            f.append(("VS", str(12700 + self.rng.randint(-20, 20))))
        elif self.aux == "VM":
            f += [("VM", str(v_mv // 2 + 10)), ("DM", str(8))]
        elif self.aux == "T":
            f.append(("T", "25"))
        f += [
            ("I", str(i_ma)), ("P", str(int(self.v * self.i))), ("CE", str(self.ce_mah)),
            ("SOC", str(int(self.soc * 1000))),
            ("TTG", "-1" if i_ma >= 0 else str(min(14400, int(-self.capacity * self.soc * 60 / min(self.i, -0.1))))),
            ("Alarm", _onoff(self.soc < 0.3)),
        ]
        if self.has_relay:
            f.append(("Relay", "OFF"))
        f += [("AR", "4" if self.soc < 0.3 else "0"), ("BMV", self.model_text), ("FW", "0415")]
        if self.has_mon:
            f.append(("MON", "0"))
        return f

    def history_fields(self):
        return [
            ("H1", "-102345"), ("H2", "-50123"), ("H3", "-40000"), ("H4", "97"), ("H5", "0"),
            ("H6", str(self.h6)), ("H7", "10765"), ("H8", "14688"), ("H9", "86400"), ("H10", "12"),
            ("H11", "0"), ("H12", "0"), ("H15", "-22"), ("H16", "15240"), ("H17", "15032"), ("H18", "16433"),
        ]

    def blocks(self):
        return [block(self.main_fields()), block(self.history_fields())]


class SmartShunt(BMV712):
    """SmartShunt 500A/50mV: no Relay field, H block before the main block (C12-15)."""

    pid = 0xA389
    name = "SmartShunt 500A/50mV"
    model_text = "SmartShunt 500A/50mV"
    has_relay = False
    has_mon = True

    def blocks(self):
        return [block(self.history_fields()), block(self.main_fields())]


class BMV700(BMV712):
    pid = 0x203
    name = "BMV-700"
    model_text = "700"
    has_mon = False
    aux = None

    def history_fields(self):
        return [f for f in super().history_fields() if f[0] not in ("H15", "H16")]


class SmartSolarMPPT(_Device):
    """SmartSolar MPPT 100/30 with load output; one block per second (older
    firmware layout) plus async HEX frames (panel power 0xEDBC, state 0x0201)
    glued after the checksum byte, as MPPT firmware >= 1.17 sends them."""

    pid = 0xA056
    name = "SmartSolar MPPT 100/30"

    def __init__(self, seed=2, hex_frames=True, split_blocks=False, **kw):
        super().__init__(seed, **kw)
        self.hex_frames = hex_frames
        self.split = split_blocks
        self.yield_today = 0.0
        self.hsds = 274

    def step(self):
        super().step()
        day = (self.t % 86400) / 86400.0
        sun = max(0.0, math.sin(2 * math.pi * (day - 0.25)))
        self.ppv = int(sun * 400 + self.rng.uniform(0, 5)) if sun > 0 else 0
        self.vbat = 13.2 + 0.8 * sun
        self.vpv = (36.0 + self.rng.uniform(-1, 1)) if sun > 0 else 0.5
        self.il = 1.5 + self.rng.uniform(-0.1, 0.1)
        self.ibat = max(0.0, self.ppv * 0.96 / self.vbat - self.il)
        self.yield_today += self.ppv / 3600000.0
        self.cs = 0 if self.ppv == 0 else (3 if sun < 0.8 else 4)

    def fields_a(self):
        return [
            ("PID", "0x%X" % self.pid), ("FW", "159"), ("SER#", self.serial),
            ("V", str(int(self.vbat * 1000))), ("I", str(int(self.ibat * 1000))),
            ("VPV", str(int(self.vpv * 1000))), ("PPV", str(self.ppv)), ("CS", str(self.cs)),
            ("MPPT", "2" if self.ppv else "0"), ("OR", "0x00000000" if self.ppv else "0x00000001"),
        ]

    def fields_b(self):
        return [
            ("ERR", "0"), ("LOAD", "ON"), ("IL", str(int(self.il * 1000))), ("H19", "12345"),
            ("H20", str(int(self.yield_today * 100))), ("H21", "412"), ("H22", "187"), ("H23", "398"),
            ("HSDS", str(self.hsds)),
        ]

    def blocks(self):
        out = []
        if self.split:
            out = [block(self.fields_a()), block(self.fields_b())]
        else:
            out = [block(self.fields_a() + self.fields_b())]
        if self.hex_frames:
            out.append(hex_async(0xEDBC, self.ppv * 100, 4) + hex_async(0x0201, self.cs, 1))
        return out


class PhoenixInverter(_Device):
    """Phoenix Inverter Smart 12V 1200VA 230V (0xA2F1, C11 label set)."""

    pid = 0xA2F1
    name = "Phoenix Inverter Smart 12V 1200VA 230V"

    def step(self):
        super().step()
        self.load_va = int(150 + 100 * abs(math.sin(self.t / 300.0)) + self.rng.uniform(0, 10))
        self.v = 12.8 + self.rng.uniform(-0.05, 0.05)

    def blocks(self):
        return [block([
            ("PID", "0x%X" % self.pid), ("FW", "0114"), ("SER#", self.serial), ("MODE", "2"), ("CS", "9"),
            ("AC_OUT_V", "23000"), ("AC_OUT_I", str(self.load_va // 23)), ("AC_OUT_S", str(self.load_va)),
            ("V", str(int(self.v * 1000))), ("AR", "0"), ("WARN", "0"), ("OR", "0x00000000"),
        ])]


class BlueSmartCharger(_Device):
    """Blue Smart IP22 charger 12/30 (C5 label set) with async HEX batches."""

    pid = 0xA332
    name = "Blue Smart IP22 Charger"

    def step(self):
        super().step()
        self.v = 13.8 + self.rng.uniform(-0.02, 0.02)
        self.i = 8.0 + self.rng.uniform(-0.5, 0.5)

    def blocks(self):
        return [
            block([("PID", "0x%X" % self.pid), ("FWE", "342FF"), ("SER#", self.serial),
                   ("V", str(int(self.v * 1000))), ("I", str(int(self.i * 1000))), ("T", "22"),
                   ("ERR", "0"), ("CS", "5"), ("HC#", "57825")]),
            hex_async(0xED8D, int(self.v * 100), 2) + hex_async(0xEDD5, int(self.v * 100), 2)
            + hex_async(0x0120, self.t, 4),
        ]


class OrionXS(_Device):
    pid = 0xA3F0
    name = "Orion XS 12V/12V-50A"

    def blocks(self):
        return [block([
            ("PID", "0x%X" % self.pid), ("FWE", "0115FF"), ("SER#", self.serial), ("V", "13220"),
            ("I", "20100"), ("P", "265"), ("DC_IN_V", "1262"), ("DC_IN_I", "220"), ("DC_IN_P", "277"),
            ("CS", "3"), ("OR", "0x00000000"), ("ERR", "0"),
        ])]


MODELS = {
    "bmv700": BMV700,
    "bmv712": BMV712,
    "smartshunt": SmartShunt,
    "mppt": SmartSolarMPPT,
    "inverter": PhoenixInverter,
    "charger": BlueSmartCharger,
    "orionxs": OrionXS,
}


def make(model, seed=1, **kw):
    try:
        cls = MODELS[model]
    except KeyError:
        raise ValueError("unknown model %r (choose from %s)" % (model, ", ".join(sorted(MODELS))))
    return cls(seed=seed, **kw)
