# MicroPython board definition for vegw on esp32s3-devkit-n8.
# ESP32-S3-DevKitC-1 without octal PSRAM (N8, N8R2), 8 MB flash.
# Built by `make firmware BOARD=esp32s3-devkit-n8` (MicroPython and ESP-IDF versions in
# boards/toolchain.env): make -C ports/esp32 BOARD_DIR=<vegw>/boards/esp32s3-devkit-n8
set(IDF_TARGET esp32s3)

# sdkconfig.spiram_sx: quad PSRAM detected at boot when fitted (N8R2) and
# ignored when absent (N8), as the port's ESP32_GENERIC_S3.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    boards/sdkconfig.spiram_sx
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

include(${MICROPY_BOARD_DIR}/../common/vegw.cmake)
