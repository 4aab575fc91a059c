"""OAuth 2.0 access tokens for the RBM API from a Google service-account key.

The JWT-bearer grant (RFC 7523) is small enough to do here with `cryptography` (a core
dependency): sign {iss, scope, aud, iat, exp} with the key's RSA private key (RS256), POST
it to the key's `token_uri`, cache the access token until a minute before it expires.
Tokens are cached per process and per service account, shared by every channel instance
that uses the same key.
"""
from __future__ import annotations

import asyncio
import base64
import time

import aiohttp
import msgspec
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway import provider

SCOPE = "https://www.googleapis.com/auth/rcsbusinessmessaging"


class ServiceAccount(msgspec.Struct):
    client_email: str
    private_key: str
    token_uri: str = "https://oauth2.googleapis.com/token"
    private_key_id: str = ""


def key_problem(raw: str) -> str:
    """Why `raw` cannot mint tokens ("" when it can): it must be the JSON key file Google
    Cloud gives for a service account, with the fields `assertion` and `TokenCache` use.
    Never quotes the key."""
    try:
        obj = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):      # RecursionError: "[[[[..." nested deep
        return "not JSON: paste the whole key file of the service account"
    if not isinstance(obj, dict) or obj.get("type", "service_account") != "service_account":
        return 'not a service-account key file (`"type": "service_account"`)'
    try:
        sa = msgspec.convert(obj, ServiceAccount)
    except msgspec.ValidationError as e:
        return f"not a service-account key: {e}"
    if not sa.client_email or not sa.private_key:
        return "`client_email` and `private_key` must not be empty"
    if not sa.token_uri.startswith(("https://", "http://")):
        return "`token_uri` must be an http(s) URL"
    try:
        # Structure only: a full RSA check costs ~35 ms, and this runs at every load.
        key = serialization.load_pem_private_key(sa.private_key.encode(), password=None,
                                                 unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return "`private_key` is not an unencrypted PEM private key"
    if not isinstance(key, rsa.RSAPrivateKey):
        return "`private_key` is not an RSA key"
    return ""


class TokenAnswer(msgspec.Struct):
    access_token: str
    expires_in: int = 3600


class TokenError(Exception):
    def __init__(self, outcome: provider.Outcome):
        super().__init__(f"token endpoint answered {outcome.status or outcome.error}")
        self.outcome = outcome


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def assertion(sa: ServiceAccount, now: float | None = None) -> str:
    """The signed JWT sent to the token endpoint."""
    now = int(time.time() if now is None else now)
    header = {"alg": "RS256", "typ": "JWT"}
    if sa.private_key_id:
        header["kid"] = sa.private_key_id
    claims = {"iss": sa.client_email, "scope": SCOPE, "aud": sa.token_uri,
              "iat": now, "exp": now + 3600}
    signing_input = (_b64url(msgspec.json.encode(header)) + "." +
                     _b64url(msgspec.json.encode(claims)))
    key = serialization.load_pem_private_key(sa.private_key.encode(), password=None)
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg,union-attr]
    return signing_input + "." + _b64url(sig)


class TokenCache:
    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def forget(self, sa: ServiceAccount) -> None:
        self._tokens.pop((sa.token_uri, sa.client_email), None)

    async def get(self, http: aiohttp.ClientSession | None, sa: ServiceAccount,
                  timeout: float = 10.0) -> str:
        k = (sa.token_uri, sa.client_email)
        hit = self._tokens.get(k)
        if hit and hit[1] > time.time():
            return hit[0]
        lock = self._locks.setdefault(k, asyncio.Lock())
        async with lock:                      # one refresh at a time, the others reuse it
            hit = self._tokens.get(k)
            if hit and hit[1] > time.time():
                return hit[0]
            form = ("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                    "&assertion=" + assertion(sa)).encode()
            out = await provider.call(http, "POST", sa.token_uri, data=form, timeout=timeout,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            if out.status != 200:
                raise TokenError(out)
            try:
                ans = msgspec.json.decode(out.body, type=TokenAnswer)
            except msgspec.DecodeError as e:
                raise TokenError(out) from e
            self._tokens[k] = (ans.access_token, time.time() + max(0, ans.expires_in - 60))
            return ans.access_token


TOKENS = TokenCache()
