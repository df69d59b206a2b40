# MicroPython build manifest for the vegw firmware on lilygo-t-sim7600.
# Build (from a micropython checkout, ports/esp32), pointing at this folder:
#   make BOARD=ESP32_GENERIC BOARD_VARIANT=SPIRAM FROZEN_MANIFEST=/path/to/vegw/boards/lilygo-t-sim7600/manifest.py
# and the partition table beside it (sdkconfig:
#   CONFIG_PARTITION_TABLE_CUSTOM=y
#   CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="/path/to/vegw/boards/lilygo-t-sim7600/partitions.csv").
# Paths below are relative to this file.

# The port's own frozen modules (asyncio, network helpers, ntptime, ...).
include("$(PORT_DIR)/boards/manifest.py")

# Shared vegw code: every module in firmware/lib (host twins live elsewhere).
freeze("../../firmware/lib")

# Hardware drivers for the board (firmware/drivers, imported as drivers.*);
# the *_host.py twins are for the unix port only and are not frozen. Other
# drivers are added here as they are written.
package("drivers", files=['wifi.py', 'relay.py', 'ble_scan.py', 'modem.py', 'esp32.py', 'flash_esp32.py', 'state_store.py'], base_path="../../firmware")

# The task wiring (firmware/app.py); main.py and boot.py stay as files on the
# filesystem so a site can be fixed over the REPL.
module("app.py", base_path="../../firmware")
