# Runs under MicroPython (and CPython): parse + decode figures for one set of
# streams. argv: vegw|naive, then "devices" (one stream, parser and dict per
# device, read 128 bytes at a time in turn: how the gateway runs) or
# "shared" (the three devices' blocks in one stream, one parser, one dict).
import sys
import gc
import time

try:
    ticks = time.ticks_us
    diff = time.ticks_diff
except AttributeError:
    ticks = lambda: time.perf_counter_ns() // 1000  # noqa: E731
    diff = lambda a, b: a - b  # noqa: E731

import vedirect
import vedirect_fields as F
from naive_vedirect import NaiveParser, naive_decode

which = sys.argv[1] if len(sys.argv) > 1 else "vegw"
layout = sys.argv[2] if len(sys.argv) > 2 else "devices"
names = ["build/bench_dev%d.bin" % j for j in range(3)] if layout == "devices" else ["build/bench_stream.bin"]
streams = []
for name in names:
    with open(name, "rb") as f:
        streams.append(f.read())
total = sum(len(s) for s in streams)
CHUNK = 128  # the gateway reads a UART 128 bytes at a time (app._READ_BUF)
# the reads in order: (stream, start, length), one chunk per stream in turn
sched = []
pos = [0] * len(streams)
while sum(pos) < total:
    for j in range(len(streams)):
        k = min(CHUNK, len(streams[j]) - pos[j])
        if k > 0:
            sched.append((j, pos[j], k))
            pos[j] += k
# each read as a view of its stream, made before timing (both parsers get
# the same; no copy: the streams fill a fifth of the ESP32-sized heap)
mvs = [memoryview(s) for s in streams]
reads = [(j, mvs[j][s:s + k], k) for j, s, k in sched]
count = [0]

if which == "vegw":
    gc.collect()
    heap0 = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    raws = [{} for _ in streams]

    def reader(raw):
        def on_block(b):
            F.update(b, raw)
            count[0] += 1
        return on_block

    ps = [vedirect.Parser(reader(raw)) for raw in raws]
    gc.collect()
    heap_parser = ((gc.mem_alloc() - heap0) // len(ps)) if heap0 else 0  # per parser + its dict

    def run(steps):
        for j, rx, k in steps:
            ps[j].feed(rx, k)

    run(reads[:16])  # warm up: the device dicts reach their final size
    best = None
    for rep in range(5):
        t0 = ticks()
        run(reads)
        dt = diff(ticks(), t0)
        best = dt if best is None or dt < best else best
    ns_per_byte = best * 1000 / total
    # allocation per block, with the GC off
    alloc_block = alloc_byte = -1
    if hasattr(gc, "mem_alloc"):
        part = reads[:64]  # a slice of the run: the heap is an ESP32's, GC is off
        gc.collect()
        gc.disable()
        before_blocks = count[0]
        a = gc.mem_alloc()
        run(part)
        alloc_block = (gc.mem_alloc() - a) / (count[0] - before_blocks)
        # feeding bytes one at a time while no block completes: a block's
        # bytes minus its checksum byte
        data = streams[0]
        blk_end = data.find(b"\r\nChecksum\t") + 11
        part = data[:blk_end]
        singles = [part[j:j + 1] for j in range(len(part))]  # made before measuring
        p = ps[0]
        p.reset()
        gc.collect()
        a = gc.mem_alloc()
        for one in singles:
            p.feed(one)
        alloc_byte = (gc.mem_alloc() - a) / len(part)
        gc.enable()
    fields = sum(len(r) for r in raws)
    print("RESULT vegw ns_per_byte=%.1f alloc_per_block=%.1f alloc_per_byte_no_block=%.3f parser_heap=%d fields=%d blocks=%d"
          % (ns_per_byte, alloc_block, alloc_byte, heap_parser, fields, count[0]))
else:
    def on_block(b):
        naive_decode(b)
        count[0] += 1

    ps = [NaiveParser(on_block) for _ in streams]
    best = None
    for rep in range(3):
        t0 = ticks()
        for j, rx, k in reads:
            ps[j].feed(rx)
        dt = diff(ticks(), t0)
        best = dt if best is None or dt < best else best
    print("RESULT naive ns_per_byte=%.1f blocks=%d" % (best * 1000 / total, count[0]))
