# Runs under MicroPython (and CPython): parse + decode figures for one stream.
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
with open("build/bench_stream.bin", "rb") as f:
    data = f.read()
CHUNK = 128  # the gateway reads a UART 128 bytes at a time (app._READ_BUF)

if which == "vegw":
    gc.collect()
    heap0 = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    raw = {}
    count = [0]

    def on_block(b):
        F.update(b, raw)
        count[0] += 1

    p = vedirect.Parser(on_block)
    gc.collect()
    heap_parser = (gc.mem_alloc() - heap0) if heap0 else 0
    rx = bytearray(CHUNK)
    mv = memoryview(data)
    # warm up: the device dict reaches its final size
    p.feed(data[:2000])
    # timing
    best = None
    for rep in range(5):
        t0 = ticks()
        i = 0
        n = len(data)
        while i < n:
            k = CHUNK if n - i >= CHUNK else n - i
            rx[:k] = mv[i:i + k]
            p.feed(rx, k)
            i += k
        dt = diff(ticks(), t0)
        best = dt if best is None or dt < best else best
    ns_per_byte = best * 1000 / len(data)
    # allocation per block, with the GC off
    alloc_block = alloc_byte = -1
    if hasattr(gc, "mem_alloc"):
        gc.collect()
        gc.disable()
        before_blocks = count[0]
        a = gc.mem_alloc()
        i = 0
        n = 8192  # a slice of the stream: the heap is an ESP32's, GC is off
        while i < n:
            k = CHUNK if n - i >= CHUNK else n - i
            rx[:k] = mv[i:i + k]
            p.feed(rx, k)
            i += k
        alloc_block = (gc.mem_alloc() - a) / (count[0] - before_blocks)
        # feeding bytes one at a time while no block completes: a block's
        # bytes minus its checksum byte
        blk_end = data.find(b"\r\nChecksum\t") + 11
        part = data[:blk_end]
        singles = [part[j:j + 1] for j in range(len(part))]  # made before measuring
        p.reset()
        gc.collect()
        a = gc.mem_alloc()
        for one in singles:
            p.feed(one)
        alloc_byte = (gc.mem_alloc() - a) / len(part)
        gc.enable()
    fields = sum(1 for _ in raw)
    print("RESULT vegw ns_per_byte=%.1f alloc_per_block=%.1f alloc_per_byte_no_block=%.3f parser_heap=%d fields=%d blocks=%d"
          % (ns_per_byte, alloc_block, alloc_byte, heap_parser, fields, count[0]))
else:
    count = [0]

    def on_block(b):
        naive_decode(b)
        count[0] += 1

    p = NaiveParser(on_block)
    best = None
    for rep in range(3):
        t0 = ticks()
        i = 0
        while i < len(data):
            p.feed(data[i:i + CHUNK])
            i += CHUNK
        dt = diff(ticks(), t0)
        best = dt if best is None or dt < best else best
    print("RESULT naive ns_per_byte=%.1f blocks=%d" % (best * 1000 / len(data), count[0]))
