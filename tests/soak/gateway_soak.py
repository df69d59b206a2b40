# 24 hours of a site in simulated time, under the MicroPython unix port with
# an ESP32's heap: the gateway core with everything it owns (parsers, BLE
# tracker, alarm engine, derived metrics, reporter, flash log on a simulated
# NOR flash, binary minute records), fed by recorded per-second VE.Direct
# traffic and encrypted BLE adverts, an uplink that drains the outbox and
# acknowledges the log. Prints one RESULT line for the test to check.
#   micropython -X heapsize=111wK gateway_soak.py FEED_FILE HOURS STEP_S FLASH_FILE
import gc
import sys
import time

import alarm_engine
import alarm_rules
import ble_readout
import flashlog
import gateway
import metrics
import vedirect
from drivers.nor_sim import NorSim

feed_file = sys.argv[1]
hours = int(sys.argv[2])
step = int(sys.argv[3])  # simulated seconds between two blocks of a device
flash_file = sys.argv[4]

KEY = "00112233445566778899aabbccddeeff"
MAC = "C0:DE:00:00:00:01"
NAMES = ("house", "solar", "inverter")

# per device: 60 one-second chunks, each stored as u16 length + bytes
chunks = {}
with open(feed_file, "rb") as f:
    for name in NAMES:
        lst = []
        for _ in range(60):
            n = f.read(2)
            n = n[0] | (n[1] << 8)
            lst.append(f.read(n))
        chunks[name] = lst
    adverts = []  # 256 encrypted adverts, data counters 0, 256, ... (made on the host)
    for _ in range(256):
        n = f.read(1)[0]
        adverts.append(f.read(n))

cfg = {
    "gateway": {"id": "soak"},
    "mqtt": {"heartbeat": 300, "min_interval": 10},
    "devices": [{"name": n, "type": "vedirect"} for n in NAMES] + [{"name": "shunt", "type": "ble", "mac": MAC, "key": KEY}],
    "log": {"interval": 60},
}
rules, errs = alarm_rules.parse_rules([
    "low_soc: warning: house.SOC < 30 for 2m clear 35",
    "pump: alarm: house.P < -1000 for 10m",
    "pv_low: info: solar.PPV < 5 for 30m clear solar.PPV > 50 after 5m",
    "shunt_low: warning: shunt.V < 12.0",
], alarm_rules.default_field_ok(list(NAMES) + ["shunt"]))
assert not errs, errs
del alarm_rules
sys.modules.pop("alarm_rules", None)  # as the app does: the parser leaves RAM
engine = alarm_engine.Engine(rules, stale_s=60, devices=list(NAMES) + ["shunt"])
tracker = ble_readout.Tracker([(MAC, KEY)])
log = flashlog.FlashLog(NorSim(96, path=flash_file))  # 384 KB file-backed: the ring wraps in a day
ms = metrics.MetricSet()
gw = gateway.Gateway(cfg, flashlog=log, engine=engine, tracker=tracker, metrics=ms)
now = [0]
parsers = {}
for name in NAMES:
    parsers[name] = vedirect.Parser((lambda n: lambda blk: gw.vedirect_block(n, blk, now[0]))(name))
mac = bytes(int(x, 16) for x in MAC.split(":"))
sent = 0
acked = 0
next_ack = 1


def uplink():
    global sent, acked
    while len(gw.out):
        gw.out.pop()
        sent += 1
    # acknowledge everything logged so far, as a connected uplink would
    last = 0
    for seq, rtype, p in log.read_from(log.cursor + 1):
        last = seq
        acked += 1
    if last:
        log.mark_uploaded(last)


t0 = time.ticks_ms()
heap = []
counter = 0
start = 1800000000
for t in range(0, hours * 3600, step):
    now[0] = start + t
    for name in NAMES:
        parsers[name].feed(chunks[name][(t // step) % 60])
    counter = (counter + 1) & 0xFF
    gw.ble_advert(mac, adverts[counter], -70, now[0])
    for s in range(step):
        gw.tick(now[0] + s)
    if t % 600 == 0:
        uplink()
    if t % 3600 == 0:
        gc.collect()
        heap.append(gc.mem_alloc())
gc.collect()
heap.append(gc.mem_alloc())
st = log.stats()
print("RESULT hours=%d wall_ms=%d heap_first=%d heap_max=%d heap_last=%d outbox_dropped=%d outbox_high=%d "
      "sent=%d acked=%d log_written=%d overwritten_unsent=%d blocks=%d events=%d parse_errors=%d "
      "adverts=%d ignored=%d" % (
          hours, time.ticks_diff(time.ticks_ms(), t0), heap[1], max(heap[1:]), heap[-1], gw.out.dropped,
          gw.out.high_water, sent, acked, st["written"], st["overwritten_unsent"], gw.counters["blocks"],
          gw.counters["events"], sum(p.checksum_errors + p.overflows for p in parsers.values()),
          gw.counters["adverts"], gw.counters["adverts_ignored"]))
print("HEAP", " ".join(str(h) for h in heap))
