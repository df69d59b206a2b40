"""Flash log figures: bytes per 1-minute record set, days of buffering,
append cost under MicroPython, erase counts per day.

A synthetic site (BMV-712, MPPT with load output, Phoenix inverter, a BLE
SmartShunt) is simulated at 1 Hz with noise, daily solar, load steps and
cloud flicker; each minute is aggregated (log_windows.Agg) and encoded
(records.MinuteEncoder) exactly as the firmware does, then written to a
simulated NOR flash through flashlog. Targets are from issue 10.
"""
import math
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware", "lib"), os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tools")]

import flashlog  # noqa: E402
import log_windows  # noqa: E402
import records  # noqa: E402
from drivers.nor_sim import NorSim  # noqa: E402

LAYOUT = [
    ("house", ["V", "VS", "I", "P", "CE", "SOC", "TTG", "Alarm", "Relay", "AR"]),
    ("solar", ["V", "I", "VPV", "PPV", "IL", "LOAD", "CS", "ERR", "MPPT", "H20"]),
    ("inverter", ["V", "AC_OUT_V", "AC_OUT_I", "AC_OUT_S", "MODE", "CS", "AR", "WARN"]),
    ("shunt", ["V", "I", "SOC", "CE", "TTG", "AR"]),
]
MB15 = 1536 * 1024  # the 1.5 MB of the issue
FS960 = 960 * 1024  # littlefs of the OTA build (app code and config live there too)


class Site:
    """1 Hz values of a 24 V cabin: 400 Ah bank, 1.2 kWp solar, 1.6 kVA inverter.
    BMV-like smoothing: TTG from a current averaged over about 5 minutes."""

    def __init__(self, seed=1):
        self.r = random.Random(seed)
        self.t = 1_700_000_000 - (1_700_000_000 % 86400)  # a midnight (UTC)
        self.ce = -80.0
        self.fridge = False
        self.fridge_left = 600
        self.ac_load = 0.8
        self.cloud = 1.0
        self.h20 = 0.0
        self.cs = 0
        self.iavg = 0.0

    def step(self):
        r = self.r
        self.t += 1
        tod = (self.t % 86400) / 3600.0
        if tod < 1 / 3600:
            self.h20 = 0.0
        # solar: half sine 6..18 h, clouds as a bounded random walk with flicker
        sun = max(0.0, math.sin((tod - 6) / 12 * math.pi)) if 6 <= tod <= 18 else 0.0
        self.cloud = min(1.0, max(0.2, self.cloud + r.gauss(0, 0.01)))
        flicker = 1.0 if r.random() > 0.02 else r.uniform(0.5, 0.9)
        ppv = 1200 * sun * self.cloud * flicker
        vpv = (68.0 + 6 * sun + r.gauss(0, 0.05)) if sun > 0 else 2.0 + r.gauss(0, 0.02)
        # loads: base, fridge compressor cycling, inverter load steps
        self.fridge_left -= 1
        if self.fridge_left <= 0:
            self.fridge = not self.fridge
            self.fridge_left = r.randint(600, 1500)
        if r.random() < 1 / 900:
            self.ac_load = r.choice([0.3, 0.8, 1.5, 3.0, 5.0])
        ac_i = max(0.0, self.ac_load + r.gauss(0, 0.05))
        ac_v = 230.0 + r.gauss(0, 0.3)
        dc_inv = ac_i * ac_v / 24.5 / 0.9
        load = 2.0 + (4.0 if self.fridge else 0.0) + r.gauss(0, 0.1)
        soc = max(0.0, min(100.0, 100 + self.ce / 4.0))
        vbat = 24.0 + 2.6 * soc / 100
        ich = ppv / max(vbat, 1) * 0.97
        if soc > 99.5:
            ich = min(ich, load + dc_inv)  # float: charger follows the load
        i = ich - load - dc_inv + r.gauss(0, 0.15)
        v = vbat + 0.004 * i + r.gauss(0, 0.005)
        self.ce = min(0.0, self.ce + i / 3600)
        self.h20 += ppv / 3600 / 1000
        self.cs = 0
        self.iavg = 0.0 if ppv < 1 else (3 if soc < 95 else 5)
        self.iavg += (i - self.iavg) / 300
        ttg = None if self.iavg >= 0 else min(14400, int((400 + self.ce) / max(0.1, -self.iavg) * 60))
        return {
            "house": {"V": v, "VS": 12.7 + r.gauss(0, 0.004), "I": i, "P": round(v * i), "CE": self.ce,
                      "SOC": soc, "TTG": ttg, "Alarm": False, "Relay": False, "AR": 0},
            "solar": {"V": v + 0.02, "I": ich + r.gauss(0, 0.05) if ich > 0 else 0.0, "VPV": vpv,
                      "PPV": round(ppv), "IL": max(0.0, load - 0.5), "LOAD": True, "CS": self.cs,
                      "ERR": 0, "MPPT": 2 if ppv > 1 else 0, "H20": self.h20},
            "inverter": {"V": v - 0.05, "AC_OUT_V": ac_v, "AC_OUT_I": ac_i, "AC_OUT_S": round(ac_v * ac_i),
                         "MODE": 2, "CS": 9, "AR": 0, "WARN": 0},
            "shunt": {"V": v + r.gauss(0, 0.005), "I": i + r.gauss(0, 0.1), "SOC": soc, "CE": self.ce,
                      "TTG": ttg, "AR": 0},
        }


def _row(taken, fields):
    """Agg.take()'s (fields seen, row) in the layout's field order."""
    if taken is None:
        return None
    got = dict(zip(*taken))
    return [got.get(f) for f in fields]


def minute_frames(days, seed=1, key_every=60, per_record=5, layout=None):
    """Log records (rtype, payload) of `days` of the simulated site."""
    layout = layout or LAYOUT
    site = Site(seed)
    aggs = [log_windows.Agg() for _ in layout]
    enc = records.MinuteEncoder(layout, key_every=key_every, per_record=per_record)
    for _m in range(int(days * 1440)):
        for _s in range(60):
            vals = site.step()
            for k, (name, _) in enumerate(layout):
                for f, v in vals[name].items():
                    aggs[k].add(f, v)
        for rec in enc.add(site.t, [_row(a.take(), fs) for a, (_, fs) in zip(aggs, layout)]):
            yield rec
    last = enc.take()
    if last:
        yield last


def sizes(days=3, key_every=60, per_record=5, layout=None):
    """(minutes, bytes on flash incl. the log's 12-byte record overhead, records)."""
    total = 0
    nrec = 0
    for rtype, p in minute_frames(days, key_every=key_every, per_record=per_record, layout=layout):
        nrec += 1
        total += len(p) + 12
    return int(days * 1440), total, nrec


def days_in(nbytes, per_minute, sector=4096):
    sectors = nbytes // sector
    usable = (sectors - 2 - 1) * (sector - 20)  # 2 cursor sectors, one kept erased
    return usable / per_minute / 1440


LEAN = [
    ("house", ["V", "I", "CE", "SOC", "TTG", "Alarm", "AR"]),
    ("solar", ["VPV", "PPV", "IL", "LOAD", "CS", "ERR", "H20"]),
    ("inverter", ["AC_OUT_V", "AC_OUT_I", "MODE", "CS", "AR", "WARN"]),
    ("shunt", ["V", "I", "SOC", "AR"]),
]


def mp_append_cost():
    """Time Agg.take + encode + append (+ flush every 5 minutes) under the
    MicroPython port, on a 16-sector simulated flash."""
    code = r"""
import time, gc, records, flashlog, log_windows
from drivers.nor_sim import NorSim
L = %r
enc = records.MinuteEncoder(L)
aggs = [log_windows.Agg() for _ in L]
bd = NorSim(16, 4096)
log = flashlog.FlashLog(bd)
x = 1
def rnd(n):
    global x
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return (x >> 8) %% n
N = 200
add_us = enc_us = app_us = fl_us = 0
nflush = 0
peak = 0
for m in range(N):
    for s in range(60):
        t0 = time.ticks_us()
        for k in range(len(L)):
            for f in L[k][1]:
                aggs[k].add(f, 24 + rnd(300) / 100)
        add_us += time.ticks_diff(time.ticks_us(), t0)
    t0 = time.ticks_us()
    rows = []
    for k in range(len(L)):
        got = aggs[k].take()
        d = dict(zip(got[0], got[1])) if got else {}
        rows.append([d.get(f) for f in L[k][1]] if got else None)
    recs = enc.add(1700000000 + 60 * m, rows)
    t1 = time.ticks_us()
    for rt, p in recs:
        log.append(rt, p)
    t2 = time.ticks_us()
    if m %% 5 == 4:
        log.flush()
        nflush += 1
    t3 = time.ticks_us()
    enc_us += time.ticks_diff(t1, t0)
    app_us += time.ticks_diff(t2, t1)
    fl_us += time.ticks_diff(t3, t2)
    a = gc.mem_alloc()
    if a > peak:
        peak = a
gc.collect()
t0 = time.ticks_us()
log2 = flashlog.FlashLog(bd)
t1 = time.ticks_us()
print(add_us // (N * 60), enc_us // N, app_us // N, fl_us // nflush, time.ticks_diff(t1, t0), peak)
""" % (LAYOUT,)
    from vegw.runtime import micropython_binary, micropython_env

    out = subprocess.run([micropython_binary(), "-X", "heapsize=111wK", "-c", code], env=micropython_env(),
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return None, (out.stderr.strip() or out.stdout.strip())[-400:]
    return [int(x) for x in out.stdout.split()], None


def mp_open_full():
    """Open (boot scan) of a full 1.5 MB log under the MicroPython port, on a
    file-backed simulated flash (the image does not fit the heap)."""
    import tempfile

    code = r"""
import time, gc, flashlog
from drivers.nor_sim import NorSim
bd = NorSim(384, 4096, path=%r)
log = flashlog.FlashLog(bd)
p = bytes(160)
for k in range(10500):
    log.append(17, p)
    if k %% 4 == 3:
        log.flush()
    if k %% 50 == 0:
        log.mark_uploaded(log.next_seq - 1)
log.flush()
gc.collect()
m0 = gc.mem_alloc()
t0 = time.ticks_us()
log2 = flashlog.FlashLog(bd)
t1 = time.ticks_us()
gc.collect()
print(time.ticks_diff(t1, t0), gc.mem_alloc() - m0, log2.stats()["live_sectors"])
"""
    from vegw.runtime import micropython_binary, micropython_env

    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([micropython_binary(), "-X", "heapsize=111wK", "-c", code % os.path.join(d, "f.bin")],
                             env=micropython_env(), capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return None, (out.stderr.strip() or out.stdout.strip())[-400:]
    return [int(x) for x in out.stdout.split()], None


def main():
    print("site: %s" % ", ".join("%s (%d fields)" % (n, len(f)) for n, f in LAYOUT))
    t0 = time.time()
    days = 2
    recs = list(minute_frames(days))
    minutes = days * 1440
    total = sum(len(p) + 12 for _, p in recs)
    per_min = total / minutes
    print("1-minute record set, 4 devices (%d fields), %d simulated days: %.1f bytes/minute on flash, "
          "%d log records (5 minutes each, key frame hourly), log overhead included"
          % (sum(len(f) for _, f in LAYOUT), days, per_min, len(recs)))
    m1, t1, _ = sizes(1, per_record=1)
    print("  one record per minute instead: %.1f bytes/minute" % (t1 / m1))
    m2, t2, _ = sizes(1, layout=LEAN)
    print("  lean layout (%d fields, no P/AC_OUT_S/duplicate V): %.1f bytes/minute"
          % (sum(len(f) for _, f in LEAN), t2 / m2))
    naive = sum(len(f) for _, f in LAYOUT) * 3 * 4 + 12
    print("  (naive: 4-byte min/avg/max per field, one record: %d bytes/minute)" % naive)
    d15 = days_in(MB15, per_min)
    print("days of 1-minute data in a 1.5 MB raw partition: %.1f days (lean layout %.1f)   [target >= 30]"
          % (d15, days_in(MB15, t2 / m2)))
    for files in (120, 180):
        print("days in %d littlefs sector files (%d KB of the 960 KB OTA filesystem): %.1f days"
              % (files, files * 4, days_in(files * 4096 + 3 * 4096, per_min)))
    print("  (the OTA filesystem also holds the firmware .py/.mpy files, config and littlefs metadata)")
    # erase counts per day, measured on the simulated 1.5 MB flash (384 sectors)
    bd = NorSim(384, 4096)
    log = flashlog.FlashLog(bd)
    for k, (rtype, p) in enumerate(recs):
        log.append(rtype, p)
        log.flush()  # one block = 5 minutes: flush each
        if k % 2 == 1:
            log.mark_uploaded(log.next_seq - 1)  # online: acked every 10 min
    ring = sum(bd.erases[2:])
    meta = bd.erases[0] + bd.erases[1]
    print("erases per day (flush every 5 min, ack every 10 min): %.1f log + %.1f cursor "
          "= %.3f per log sector per day (each sector erased once every %.0f days)"
          % (ring / days, meta / days, ring / days / 382, 382 / max(ring / days, 1e-9)))
    print("  cursor: one 8-byte slot per ack, 510 a sector; an ack per minute = %.1f erases/day "
          "over 2 sectors" % (1440 / 510))
    print("  100k-cycle NOR endurance: log sectors last %.0f years at this rate"
          % (100000 * 382 / max(ring / days, 1e-9) / 365))
    print("syncs per day: %d log flushes + cursor acks (on the file-backed variant each one rewrites"
          " at least one 4 KB littlefs block: about that many littlefs block erases a day, spread by"
          " littlefs wear levelling over the free blocks)" % (bd.syncs / days))
    print("host time for the above: %.1f s" % (time.time() - t0))
    res, err = mp_append_cost()
    if res is None:
        print("MicroPython append cost: failed: %s" % err)
    else:
        print("MicroPython unix port, 111wK heap: Agg.add %d us per 1 Hz sample set, encode %d us/minute, "
              "append %d us/minute (a block every 5), flush of 5 min %d us, open (16 sectors) %d us, heap peak %d B "
              "(64-bit port, the 64 KB simulated flash included)" % tuple(res))
    res, err = mp_open_full()
    if res is None:
        print("MicroPython open of a full log: failed: %s" % err)
    else:
        print("MicroPython: open (boot scan) of a full 1.5 MB log, %d live sectors: %d us; the FlashLog "
              "object holds %d B (64-bit port)" % (res[2], res[0], res[1]))
    print("  (desktop CPU; expect an ESP32 at 240 MHz to be tens of times slower; flush adds the")
    print("   flash program time, an erase of 4 KB takes ~45 ms on ESP32 flash, once per sector fill)")


if __name__ == "__main__":
    main()
