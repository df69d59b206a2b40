# MicroPython board definition for vegw on esp32-devkit.
# ESP32-WROOM-32 DevKit, 4 MB flash, no PSRAM.
# Built by `make firmware BOARD=esp32-devkit` (MicroPython and ESP-IDF versions in
# boards/toolchain.env): make -C ports/esp32 BOARD_DIR=<vegw>/boards/esp32-devkit

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

include(${MICROPY_BOARD_DIR}/../common/vegw.cmake)
