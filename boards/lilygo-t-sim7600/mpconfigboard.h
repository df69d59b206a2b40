// vegw image for lilygo-t-sim7600 (LilyGO T-SIM7600X (ESP32-WROVER-E, 8 MB PSRAM), 4 MB flash).
// The name shows in os.uname().machine; `vegw doctor` reads it back.
#define MICROPY_HW_BOARD_NAME "vegw lilygo-t-sim7600"
#define MICROPY_HW_MCU_NAME "ESP32"
#define MICROPY_PY_NETWORK_HOSTNAME_DEFAULT "vegw"
