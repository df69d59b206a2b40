# AES-128 in ECB mode, one block at a time: the only primitive the BLE
# Instant Readout decoder needs (it builds CTR mode from ECB itself, because
# cryptolib on stock ESP32 firmware and the standard unix port has no CTR).
#
#   new(key16) -> object with .encrypt(block16[, out16])
#     .encrypt(block)      returns 16 new bytes
#     .encrypt(block, out) writes the 16 bytes into the bytearray `out`
#                          (no allocation on MicroPython; the decoder's path)
#
# MicroPython: `cryptolib.aes(key, 1)` (1 = ECB; MODE_* constants do not
# exist), returned as is: its encrypt() already takes an optional out buffer.
# CPython: pycryptodome's AES in ECB mode behind the same two call forms.
try:
    import cryptolib as _cl
except ImportError:  # CPython
    _cl = None


class _EcbPyCryptodome:
    def __init__(self, key):
        from Crypto.Cipher import AES

        self._c = AES.new(bytes(key), AES.MODE_ECB)

    def encrypt(self, block, out=None):
        if out is None:
            return self._c.encrypt(bytes(block))
        self._c.encrypt(block, output=out)
        return None


def new(key16):
    """An AES-128 ECB encryptor for the 16-byte key `key16`."""
    if len(key16) != 16:
        raise ValueError("AES-128 key must be 16 bytes")
    if _cl is not None:
        return _cl.aes(bytes(key16), 1)
    return _EcbPyCryptodome(key16)
