// vegw image for esp32s3-devkit (ESP32-S3-DevKitC-1 with octal PSRAM (N8R8/N16R8), 8 MB flash).
// The name shows in os.uname().machine; `vegw doctor` reads it back.
#define MICROPY_HW_BOARD_NAME "vegw esp32s3-devkit"
#define MICROPY_HW_MCU_NAME "ESP32S3"
#define MICROPY_PY_NETWORK_HOSTNAME_DEFAULT "vegw"
// The DevKitC-1's USB-UART bridge is on UART0: keep the REPL there too.
#define MICROPY_HW_ENABLE_UART_REPL (1)
