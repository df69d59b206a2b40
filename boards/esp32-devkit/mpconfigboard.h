// vegw image for esp32-devkit (ESP32-WROOM-32 DevKit, 4 MB flash, no PSRAM).
// The name shows in os.uname().machine; `vegw doctor` reads it back.
#define MICROPY_HW_BOARD_NAME "vegw esp32-devkit"
#define MICROPY_HW_MCU_NAME "ESP32"
#define MICROPY_PY_NETWORK_HOSTNAME_DEFAULT "vegw"
