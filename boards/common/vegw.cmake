# Shared end of every vegw board's mpconfigboard.cmake (MicroPython's esp32
# port, out-of-tree board: make BOARD_DIR=<vegw>/boards/<name>). The board
# has set SDKCONFIG_DEFAULTS; the port concatenates them after this file runs.

# The custom partition table beside mpconfigboard.cmake (raw "vegwlog" ring
# for the flash log, smaller vfs). An sdkconfig file cannot expand a path, so
# the option is written here with this board's absolute path; it comes last,
# after sdkconfig.base's partitions-4MiBplus.csv, and wins.
set(VEGW_PARTITIONS_SDKCONFIG ${CMAKE_BINARY_DIR}/sdkconfig.vegw_partitions)
file(WRITE ${VEGW_PARTITIONS_SDKCONFIG}
    "CONFIG_PARTITION_TABLE_CUSTOM=y\nCONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${MICROPY_BOARD_DIR}/partitions.csv\"\n")
list(APPEND SDKCONFIG_DEFAULTS ${VEGW_PARTITIONS_SDKCONFIG})

# The gateway's code is frozen into the image (boards/<name>/manifest.py):
# on a board without PSRAM its bytecode does not fit in the heap.
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
