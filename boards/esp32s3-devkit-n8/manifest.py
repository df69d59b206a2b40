# Frozen modules of the vegw image for esp32s3-devkit-n8 (MicroPython manifest;
# paths relative to this file).

# The port's own modules (asyncio, network helpers, ntptime, umqtt, ...).
include("$(PORT_DIR)/boards/manifest.py")

# vegw: firmware/lib, the ESP32 drivers and app.py; never the simulator's files.
include("../common/manifest.py")
