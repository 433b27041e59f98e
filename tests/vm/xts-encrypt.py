#!/usr/bin/env python3
"""Encrypt a plain image into a LUKS2 container's data segment, as dm-crypt's
aes-xts-plain64 with 512-byte sectors would (the VM bench's host kernel has
no device-mapper, so `cryptsetup open` cannot be used to fill the LUN).

    xts-encrypt.py VOLUME_KEY_FILE PLAIN_IMAGE LUKS_FILE DATA_OFFSET_BYTES

The volume key is the one given to `cryptsetup luksFormat --volume-key-file`
(64 bytes: AES-256-XTS). Sector n of the plain image (n from 0) is encrypted
with the 16-byte tweak n (little-endian, plain64) and written at
DATA_OFFSET + 512 n. OpenSSL's libcrypto through ctypes, stdlib only.
"""
import ctypes
import ctypes.util
import sys

SECTOR = 512
CHUNK = 1 << 20


def main():
    key_file, plain, out, offset = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    key = open(key_file, "rb").read()
    if len(key) != 64:
        sys.exit(f"volume key must be 64 bytes, not {len(key)}")
    lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
    lib.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
    lib.EVP_aes_256_xts.restype = ctypes.c_void_p
    lib.EVP_EncryptInit_ex.argtypes = [ctypes.c_void_p] * 5
    lib.EVP_EncryptUpdate.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_int,
    ]
    ctx = lib.EVP_CIPHER_CTX_new()
    if lib.EVP_EncryptInit_ex(ctx, lib.EVP_aes_256_xts(), None, key, None) != 1:
        sys.exit("EVP_EncryptInit_ex failed")
    outbuf = ctypes.create_string_buffer(SECTOR)
    outl = ctypes.c_int(0)
    sector = 0
    with open(plain, "rb") as fin, open(out, "r+b") as fout:
        fout.seek(offset)
        while True:
            data = fin.read(CHUNK)
            if not data:
                break
            if len(data) % SECTOR:
                data += b"\0" * (SECTOR - len(data) % SECTOR)
            enc = bytearray()
            for i in range(0, len(data), SECTOR):
                iv = sector.to_bytes(16, "little")
                lib.EVP_EncryptInit_ex(ctx, None, None, None, iv)
                if lib.EVP_EncryptUpdate(ctx, outbuf, ctypes.byref(outl), data[i:i + SECTOR], SECTOR) != 1:
                    sys.exit(f"encryption failed at sector {sector}")
                enc += outbuf.raw
                sector += 1
            fout.write(enc)
    print(f"encrypted {sector} sectors at offset {offset}")


if __name__ == "__main__":
    main()
