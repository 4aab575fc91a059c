"""The rcs plugin as the gateway loads it: entry point, registrations, settings schema, and
service-account keys the admin API refuses because they could never mint a token."""
from __future__ import annotations

import json

import msgspec
import pytest
from causette_rcs.channel import RCSChannel
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.plugins import PluginHost


def test_rcs_installed_and_listed():
    host = PluginHost()
    assert host.channels["rcs"] is RCSChannel
    assert host.owner("channel", "rcs") == "rcs"
    info = {p.name: p for p in host.plugins}["rcs"]
    assert info.dist == "causette-rcs" and info.registers == {"channel": ["rcs"]}
    # channel settings are per instance (validated by the channel), not plugin settings
    assert host.settings_types["rcs"] is None


def test_rcs_settings_schema_lists_the_secret_fields():
    schema = msgspec.json.schema(RCSChannel.Settings)
    props = schema["$defs"]["Settings"]["properties"]
    assert set(RCSChannel.secrets) <= set(props) and "api_base" in props


# --- service-account keys that could never mint a token, over the real admin API ----------------
@pytest.fixture(scope="module")
def pems() -> dict[str, str]:
    def pem(key) -> str:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    return {"rsa": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "ec": pem(ec.generate_private_key(ec.SECP256R1()))}


def key_file(pem: str, **over) -> str:
    sa = {"type": "service_account", "project_id": "maison", "private_key_id": "kid1",
          "private_key": pem, "client_email": "rbm@maison.iam.gserviceaccount.com",
          "token_uri": "https://oauth2.googleapis.com/token", **over}
    return json.dumps({k: v for k, v in sa.items() if v is not None})


KEYS = [
    ("a path, not the file's content", lambda p: "/etc/keys/rbm.json",
     "service_account: not JSON: paste the whole key file of the service account"),
    ("JSON nested deeper than a parser goes", lambda p: "[" * 2000,
     "service_account: not JSON: paste the whole key file of the service account"),
    ("a JSON array", lambda p: "[]",
     'service_account: not a service-account key file (`"type": "service_account"`)'),
    ("a user's OAuth credentials", lambda p: json.dumps({"type": "authorized_user", "client_id": "x",
                                                        "client_secret": "y", "refresh_token": "z"}),
     'service_account: not a service-account key file (`"type": "service_account"`)'),
    ("no private_key", lambda p: key_file(p["rsa"], private_key=None),
     "service_account: not a service-account key: Object missing required field `private_key`"),
    ("an empty client_email", lambda p: key_file(p["rsa"], client_email=""),
     "service_account: `client_email` and `private_key` must not be empty"),
    ("a cut private_key", lambda p: key_file(p["rsa"][:200]),
     "service_account: `private_key` is not an unencrypted PEM private key"),
    ("an EC key", lambda p: key_file(p["ec"]), "service_account: `private_key` is not an RSA key"),
    ("a token_uri that is no URL", lambda p: key_file(p["rsa"], token_uri="oauth2.googleapis.com/token"),
     "service_account: `token_uri` must be an http(s) URL"),
    ("Google's key file", lambda p: key_file(p["rsa"]), None),
    ("a key file without `type` (the fields the plugin reads)",
     lambda p: key_file(p["rsa"], type=None, project_id=None, private_key_id=None), None),
]


async def admin(gw, method: str, path: str, body=None):
    status, _, got = await gw.admin(method, path, body)
    return status, got


@pytest.mark.parametrize("label,make,problem", KEYS, ids=[c[0] for c in KEYS])
async def test_the_admin_api_refuses_a_service_account_that_could_never_mint_a_token(
        gateway, demo_tenant, pems, label, make, problem):
    gw = await gateway(tenants=[demo_tenant])
    key = make(pems)
    status, body = await admin(gw, "POST", "/tenants/demo/channels", {"id": "rcs", "type": "rcs", "settings": {
        "agent_id": "soldes-bot@rbm.goog", "client_token": "K3QZPVWRTMAXNBDE", "service_account": key}})
    if problem is None:
        assert status == 201, body
        assert body["settings"]["service_account"] == "***set***"
        return
    assert status == 422
    assert body["errors"] == [{"path": "$.settings", "code": "invalid", "message": problem,
                               "severity": "error"}]
    assert pems["rsa"][40:80] not in json.dumps(body)          # the key is never quoted back
    assert (await admin(gw, "GET", "/tenants/demo/channels/rcs"))[0] == 404


async def test_an_access_token_alone_still_passes(gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    status, _ = await admin(gw, "POST", "/tenants/demo/channels", {"id": "rcs", "type": "rcs", "settings": {
        "agent_id": "soldes-bot@rbm.goog", "client_token": "K3QZPVWRTMAXNBDE", "access_token": "ya29.x"}})
    assert status == 201
