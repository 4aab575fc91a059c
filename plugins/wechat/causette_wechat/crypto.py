"""WeChat signatures and safe-mode message crypto.

signature     = sha1(sorted(token, timestamp, nonce) joined), lowercase hex
msg_signature = sha1(sorted(token, timestamp, nonce, Encrypt) joined)
Encrypt       = base64(AES-256-CBC(key, iv=key[:16], PKCS#7 with a 32-byte block,
                       16 random bytes | 4-byte big-endian length | XML | AppID))
key           = base64decode(EncodingAESKey + "=")   (43 chars -> 32 bytes)
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.channels import safe_equal

BLOCK = 32


class CryptoError(ValueError):
    pass


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check(expected: str, *parts: str) -> bool:
    return bool(expected) and safe_equal(signature(*parts), expected.lower())


def pad(data: bytes) -> bytes:
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


def unpad(data: bytes) -> bytes:
    if not data:
        raise CryptoError("empty plaintext")
    n = data[-1]
    if not 1 <= n <= BLOCK or data[-n:] != bytes([n]) * n:
        raise CryptoError("bad padding")
    return data[:-n]


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of an EncodingAESKey; CryptoError (never quoting the key) when it
    is not 43 characters of Base64."""
    if len(encoding_aes_key) != 43:
        raise CryptoError(f"must be the 43-character EncodingAESKey, not {len(encoding_aes_key)} "
                          "characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as e:
        raise CryptoError("is not Base64: the 43-character EncodingAESKey holds only A-Z, a-z, "
                          "0-9, + and /") from e
    if len(key) != 32:                   # unreachable for 43 valid characters; kept as a guard
        raise CryptoError("does not decode to a 32-byte AES key")
    return key


class MessageCrypto:
    def __init__(self, token: str, encoding_aes_key: str, app_id: str):
        try:
            self.key = aes_key(encoding_aes_key)
        except CryptoError as e:
            raise CryptoError(f"EncodingAESKey {e}") from e
        self.token, self.app_id = token, app_id

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def decrypt(self, encrypt: str) -> bytes:
        """The XML inside `Encrypt`; CryptoError when it is not for our AppID."""
        try:
            ct = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as e:
            raise CryptoError("Encrypt is not Base64") from e
        if not ct or len(ct) % 16:
            raise CryptoError("bad ciphertext length")
        d = self._cipher().decryptor()
        pt = unpad(d.update(ct) + d.finalize())
        if len(pt) < 20:
            raise CryptoError("plaintext too short")
        (n,) = struct.unpack(">I", pt[16:20])
        xml, app_id = pt[20:20 + n], pt[20 + n:]
        if len(xml) != n or not safe_equal(app_id, self.app_id.encode()):
            raise CryptoError("message is not for this AppID")
        return xml

    def encrypt(self, xml: bytes, random16: bytes | None = None) -> str:
        random16 = os.urandom(16) if random16 is None else random16
        pt = pad(random16 + struct.pack(">I", len(xml)) + xml + self.app_id.encode())
        e = self._cipher().encryptor()
        return base64.b64encode(e.update(pt) + e.finalize()).decode()

    def envelope(self, xml: bytes, timestamp: str, nonce: str,
                 random16: bytes | None = None) -> str:
        """A passive reply in safe mode: the encrypted XML, wrapped and signed."""
        enc = self.encrypt(xml, random16)
        sig = signature(self.token, timestamp, nonce, enc)
        return (f"<xml><Encrypt><![CDATA[{enc}]]></Encrypt>"
                f"<MsgSignature><![CDATA[{sig}]]></MsgSignature>"
                f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>")
