"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from the gateway
secret by HKDF, so the database file alone never reveals a channel's token."""
from __future__ import annotations

import base64
from typing import Any

import msgspec
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"causette store secrets v1"


class SecretBox:
    def __init__(self, secret: bytes):
        if not secret:
            raise ValueError("the store needs a non-empty gateway secret to encrypt channel secrets")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"causette", info=_INFO).derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, values: dict[str, Any]) -> bytes | None:
        if not values:
            return None
        return self._fernet.encrypt(msgspec.json.encode(values))

    def open(self, token: bytes | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            return msgspec.json.decode(self._fernet.decrypt(token))
        except InvalidToken:
            # Wrong gateway secret: fail loudly rather than run channels with no credentials.
            raise RuntimeError("cannot decrypt stored secrets: the gateway secret (CAUSETTE_SECRET "
                               "or var/secret) differs from the one they were written with") from None
