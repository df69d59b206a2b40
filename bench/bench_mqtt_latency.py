"""Event-loop latency of mqtt_async against a real Mosquitto on loopback.

The scenarios of tests/host/test_mqtt_live.py run on CPython and on the
MicroPython unix port (heap 111wK). A task in each sleeps 5 ms in a loop and
records how late it woke: the worst figure is what a VE.Direct reader would
wait behind the MQTT client. Target: < 50 ms (a UART's 256-byte RX buffer
fills in 133 ms at 19200 baud). The tests only check that no socket call
blocked the loop (< 1 s); this prints the figure, which depends on the
machine's load. Several rounds: worst and median of the worst per round.

Run: .venv/bin/python bench/bench_mqtt_latency.py [--rounds N]
"""
import argparse
import pathlib
import statistics
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "host_tools"), str(ROOT / "tests" / "host")]

from vegw.broker import Broker, mosquitto_binary  # noqa: E402

import test_mqtt_live as live  # noqa: E402  (the scenarios the tests run)

TARGET_MS = 50
SCENARIOS = ("basic", "keepalive", "soak")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if mosquitto_binary() is None:
        print("Debian mosquitto not installed (make mosquitto): skipped")
        return 0
    script = pathlib.Path(tempfile.mkdtemp(prefix="vegw-bench-")) / "scenario.py"
    script.write_text(live.SCRIPT)
    print("%-10s %-12s %9s %9s  target < %d ms" % ("scenario", "runtime", "worst ms", "median", TARGET_MS))
    for sc in SCENARIOS:
        for runtime in live.RUNTIMES:
            worst = []
            for _ in range(a.rounds):
                with Broker() as b:
                    res = live.run_scenario(runtime, script, [sc, b.port], timeout=180)
                worst.append(max(r["lat"] for r in res))
            print("%-10s %-12s %9d %9d  %s" % (sc, runtime, max(worst), statistics.median(worst),
                                                "ok" if max(worst) < TARGET_MS else "OVER TARGET"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
