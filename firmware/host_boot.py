# Simulated board boot (vegw sim). On a board the firmware's modules are in
# flash (frozen into the image or in a ROMFS partition): their bytecode runs
# in place and only their objects take heap. Here they come as a ROMFS image
# too (vegw.simulator builds it from the same .mpy files); the unix port has
# no flash, so the image is read into one heap block first, before anything
# else, and the simulator sizes the heap as an ESP32's plus that block: the
# firmware's objects get exactly an ESP32's heap (app reports heap figures
# without the image). Files in the working directory (OTA updates) come
# before the image, as /lib comes before .frozen on a board (boot.py).
import os
import sys
import vfs

_rom = sys.argv[sys.argv.index("--rom") + 1]
ROM = bytearray(os.stat(_rom)[6])
with open(_rom, "rb") as _f:
    _f.readinto(ROM)
vfs.mount(vfs.VfsRom(ROM), "/rom")
sys.path.extend(("/rom", "/rom/lib"))
del _rom, _f
from drivers import platform_host  # noqa: E402

# what a board keeps in flash: the image, and the module names a frozen build
# holds there (vegw.simulator.FLASH_NAMES); heap_alloc is reported without both
platform_host.ROM_BYTES = len(ROM) + (int(sys.argv[sys.argv.index("--flash-names") + 1]) if "--flash-names" in sys.argv else 0)
import host_main  # noqa: E402,F401
