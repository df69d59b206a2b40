# MicroPython board definition for vegw on esp32s3-devkit.
# ESP32-S3-DevKitC-1 with octal PSRAM (N8R8/N16R8), 8 MB flash.
# Built by `make firmware BOARD=esp32s3-devkit` (MicroPython and ESP-IDF versions in
# boards/toolchain.env): make -C ports/esp32 BOARD_DIR=<vegw>/boards/esp32s3-devkit
set(IDF_TARGET esp32s3)

# Octal PSRAM (R8 modules): sdkconfig.spiram_sx then sdkconfig.spiram_oct, as
# the port's ESP32_GENERIC_S3 SPIRAM_OCT variant.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    boards/sdkconfig.240mhz
    boards/sdkconfig.spiram_sx
    boards/sdkconfig.spiram_oct
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

include(${MICROPY_BOARD_DIR}/../common/vegw.cmake)
