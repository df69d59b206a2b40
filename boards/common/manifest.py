# The vegw code frozen into every board image; boards/<name>/manifest.py
# includes this after the port's own manifest. Paths are relative to this file.
# -O3 (opt=3): no asserts nor line numbers, as the simulator compiles it.
#
# Never frozen (simulator-only, host_tools/vegw/deploy_build.py SIM_ONLY):
# host_main.py, host_boot.py, drivers/platform_host.py, drivers/*_host.py,
# drivers/nor_sim.py, drivers/ble_hood.py. main.py and boot.py stay files
# (vegw flash uploads them) so a site can be fixed over the REPL.

# Portable modules: all of firmware/lib.
freeze("../../firmware/lib", opt=3)

# ESP32 drivers common to every board (imported as drivers.<name>).
package("drivers", files=["platform_esp32.py", "wifi.py", "ble_scan.py", "relay.py", "flash_esp32.py", "state_store.py"],
        base_path="../../firmware", opt=3)

# The task wiring, and the boot path main.py runs (OTA journal, guarded start).
module("app.py", base_path="../../firmware", opt=3)
module("startup.py", base_path="../../firmware", opt=3)
