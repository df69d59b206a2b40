# MicroPython board definition for vegw on lilygo-t-a7670.
# LilyGO T-A7670E/G/SA (ESP32-WROVER-E, 8 MB PSRAM), 4 MB flash.
# Built by `make firmware BOARD=lilygo-t-a7670` (MicroPython and ESP-IDF versions in
# boards/toolchain.env): make -C ports/esp32 BOARD_DIR=<vegw>/boards/lilygo-t-a7670

# WROVER-E: PSRAM on, as the port's ESP32_GENERIC SPIRAM variant.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    boards/sdkconfig.spiram
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

include(${MICROPY_BOARD_DIR}/../common/vegw.cmake)
