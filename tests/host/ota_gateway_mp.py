# A gateway reduced to its OTA wiring, run under the MicroPython unix port by
# tests/host/test_cli_ota.py: the real OtaReceiver on a directory (OsFs) and
# the firmware's own MQTT client (mqtt_async) on a loopback mosquitto.
#   micropython ota_gateway_mp.py ROOT PORT GATEWAY healthy|silent HEALTH_MS
# A reply with "reboot" ends the process with exit code 3: the test restarts
# it on the same ROOT, which is this gateway's reset.
import sys
import json
import time
import asyncio

import ota_rx as ota
import mqtt_async

_MAX_OUT = 16  # replies waiting to be published; more are counted and dropped


async def main():
    root, port, gw, mode, health_ms = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    rx = ota.OtaReceiver(ota.OsFs(root), time.ticks_ms, health_timeout_ms=health_ms, unsigned=True)
    out = rx.boot_check()  # before anything an update may replace is imported
    dropped = [0]
    base = "vegw/%s/ota/" % gw
    # chunk messages are 9 + 1024 bytes, manifests up to 4096: size rx_buf for them
    c = mqtt_async.MQTTClient("gw-" + gw, "127.0.0.1", port, rx_buf=4096 + 64, max_inflight=8)

    def on_msg(topic, msg):
        t = topic.decode() if isinstance(topic, (bytes, bytearray)) else topic
        if not t.startswith(base):
            return
        for r in rx.handle(t[len(base):], bytes(msg)):
            if len(out) < _MAX_OUT:
                out.append(r)
            else:
                dropped[0] += 1

    c.set_callback(on_msg)
    rc = await c.connect()
    if rc != 0:
        print("connect failed", rc)
        sys.exit(1)
    await c.subscribe(base + "#", 1)
    print("gateway up, boot replies:", out)
    if mode == "healthy" and rx.pending():
        out.extend(rx.mark_healthy())  # connected and subscribed: healthy enough here
    while True:
        out.extend(rx.tick())
        while out:
            r = out.pop(0)
            pid = await c.publish(base + "status", json.dumps(r), qos=1)
            if r.get("reboot"):
                if pid:
                    await c.wait_puback(pid, 5000)
                await c.disconnect()
                sys.exit(3)
        await asyncio.sleep_ms(5)


asyncio.run(main())
