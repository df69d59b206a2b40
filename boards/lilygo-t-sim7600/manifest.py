# Frozen modules of the vegw image for lilygo-t-sim7600 (MicroPython manifest;
# paths relative to this file).

# The port's own modules (asyncio, network helpers, ntptime, umqtt, ...).
include("$(PORT_DIR)/boards/manifest.py")

# vegw: firmware/lib, the ESP32 drivers and app.py; never the simulator's files.
include("../common/manifest.py")

# The cellular modem driver (this board has one on UART1).
package("drivers", files=["modem.py"], base_path="../../firmware", opt=3)
