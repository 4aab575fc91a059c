"""Visitor identities. The server issues the id and a token bound to tenant, channel and
visitor; a connection that claims a visitor must show the token, so knowing (or guessing)
someone's visitor id is not enough to read their conversation."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from gateway.channels import safe_equal

_PURPOSE = b"causette-webchat-visitor-v1"


def _key(secret: bytes) -> bytes:
    # A key of its own, so a visitor token never doubles as anything else signed with the secret.
    return hmac.new(secret, _PURPOSE, hashlib.sha256).digest()


def new_visitor() -> str:
    return "v_" + secrets.token_urlsafe(18)


def visitor_token(secret: bytes, tenant: str, channel: str, visitor: str) -> str:
    mac = hmac.new(_key(secret), f"{tenant}|{channel}|{visitor}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def check_token(secret: bytes, tenant: str, channel: str, visitor: str, token: str) -> bool:
    return bool(token) and safe_equal(visitor_token(secret, tenant, channel, visitor), token)
