"""HS256 JSON Web Tokens, the only algorithm the MSP REST API uses (both directions).

Small on purpose: one algorithm, no key discovery, so no need for a JWT library. The key
is the *decoded* Base64 "Messaging API secret" (Apple's documentation and PHP sample);
`secret_encoding="raw"` uses the string's bytes instead, as some MSPs do.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import time
from typing import Any

from gateway.channels import safe_equal


class InvalidToken(ValueError):
    pass


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def key_bytes(secret: str, encoding: str = "base64") -> bytes:
    if encoding == "raw":
        return secret.encode()
    try:
        return base64.b64decode(secret + "=" * (-len(secret) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidToken("the secret is not Base64") from e


def encode(claims: dict[str, Any], key: bytes) -> str:
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def decode(token: str, key: bytes, *, audience: str | None = None, issuer: str | None = None,
           max_age: float, leeway: float = 60.0, now: float | None = None) -> dict[str, Any]:
    """Verify signature, algorithm, freshness and the claims asked for; return the claims.

    `audience`: `aud` must name it (a string, or a list holding it); how an inbound token
    from Apple is checked. `issuer`: `iss` must equal it; how the tokens we send read (a fake
    MSP gateway in tests). There is no fallback from one to the other: our outbound tokens
    carry `iss` = MSP id, so taking `iss` for `aud` would accept each of them inbound.
    """
    if audience is None and issuer is None:
        raise TypeError("decode() needs audience= or issuer=")
    now = time.time() if now is None else now
    try:
        head_s, body_s, sig_s = token.split(".")
        head = json.loads(b64url_decode(head_s))
        claims = json.loads(b64url_decode(body_s))
        sig = b64url_decode(sig_s)
    except (ValueError, binascii.Error, RecursionError) as e:   # RecursionError: deep nesting
        raise InvalidToken("malformed token") from e
    if not isinstance(head, dict) or head.get("alg") != "HS256":
        raise InvalidToken("algorithm must be HS256")     # refuses "none" and key confusion
    want = hmac.new(key, f"{head_s}.{body_s}".encode(), hashlib.sha256).digest()
    if not safe_equal(want, sig):
        raise InvalidToken("bad signature")
    if not isinstance(claims, dict):
        raise InvalidToken("claims are not an object")
    if audience is not None:
        aud = claims.get("aud")
        if aud is None:
            raise InvalidToken("no aud")
        if audience not in (aud if isinstance(aud, list) else [aud]):
            raise InvalidToken("audience is not this MSP")
    if issuer is not None and claims.get("iss") != issuer:
        raise InvalidToken("issuer is not this MSP")
    iat, exp = claims.get("iat"), claims.get("exp")
    if iat is None and exp is None:
        raise InvalidToken("no iat or exp: freshness unknown")
    # NaN compares false with everything and Infinity never expires: both refused, as is a
    # boolean (an int to Python).
    if iat is not None and (not _time(iat) or iat > now + leeway or now - iat > max_age):
        raise InvalidToken("stale or future iat")
    if exp is not None and (not _time(exp) or exp < now - leeway):
        raise InvalidToken("expired")
    return claims


def _time(v: Any) -> bool:
    """Whether a claim is a usable NumericDate."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
