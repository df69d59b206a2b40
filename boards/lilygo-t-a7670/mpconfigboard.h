// vegw image for lilygo-t-a7670 (LilyGO T-A7670E/G/SA (ESP32-WROVER-E, 8 MB PSRAM), 4 MB flash).
// The name shows in os.uname().machine; `vegw doctor` reads it back.
#define MICROPY_HW_BOARD_NAME "vegw lilygo-t-a7670"
#define MICROPY_HW_MCU_NAME "ESP32"
#define MICROPY_PY_NETWORK_HOSTNAME_DEFAULT "vegw"
