"""A tenant loads even when one plugin's stored settings, or one channel's, no longer pass
that plugin's own checks (a plugin upgraded with stricter ones): that part is left out, logged,
and the rest of the tenant runs."""
import msgspec

from gateway.hookspecs import hookimpl
from tests.support.wire import WireChannel, WirePlugin
from tests.test_pipeline_e2e import post, tenant

STRICT = {"on": False}


class Strict(msgspec.Struct):
    level: int = 1

    def __post_init__(self):
        if STRICT["on"]:
            raise RuntimeError("this plugin's newer check")      # not a ValueError


class StrictPlugin:
    Settings = Strict

    @hookimpl
    def register_steps(self):
        return []


class PickyChannel(WireChannel):
    type = "picky"

    def __init__(self, *args, **kwargs):
        if STRICT["on"]:
            raise KeyError("a setting this version reads differently")
        super().__init__(*args, **kwargs)


class PickyPlugin:
    @hookimpl
    def register_channels(self):
        return [PickyChannel]


async def test_a_plugin_or_channel_that_fails_at_load_leaves_the_rest_of_the_tenant(gateway, provider, caplog):
    t = tenant("acme", provider, plugins={"tree": {}, "wire": {}, "strict": {"level": 2}, "picky": {}})
    t["channels"].append({"id": "picky", "type": "picky",
                          "settings": {"secret": "s", "api_base": provider.url}})
    gw = await gateway(tenants=[t], plugins=[("wire", WirePlugin()), ("strict", StrictPlugin()),
                                             ("picky", PickyPlugin())])
    STRICT["on"] = True
    try:
        gw.registry.forget("acme")
        assert (await post(gw, "acme", {"id": "m1", "sender": "c1", "text": "salut"}))[0] == 200
        assert provider.texts("c1") == ["Bonjour !", "Femme ou homme ?"]
        rt = await gw.registry.get("acme")
        assert "picky" not in rt.channels and "strict" not in (rt.settings or {})
        logged = caplog.text
        assert "channel picky settings invalid: KeyError" in logged
        assert "settings of plugin strict invalid (RuntimeError" in logged
    finally:
        STRICT["on"] = False


async def test_settings_stored_before_a_channel_bounded_them_still_load(gateway, provider, caplog):
    """A newer version that bounds a setting more tightly must not take working instances out
    of service: they load as stored, with a warning; a wrong type still keeps one out."""
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())])
    await gw.store.set_plugin("acme", "telegram", {})
    await gw.store.put_channel("acme", "tg", "telegram", {"bot_username": "@acme_bot", "buttons_per_row": 0},
                               {"token": "1:a", "secret_token": "ok"})
    await gw.store.put_channel("acme", "odd", "telegram", {"buttons_per_row": "two"},
                               {"token": "1:a", "secret_token": "ok"})
    gw.registry.forget("acme")
    rt = await gw.registry.get("acme")
    assert rt.channels["tg"].settings.bot_username == "@acme_bot" and "odd" not in rt.channels
    assert "channel tg has settings today's rules refuse" in caplog.text
    # saving it again goes through today's rules
    s, _, p = await gw.admin("PUT", "/tenants/acme/channels/tg", {
        "type": "telegram", "settings": {"bot_username": "@acme_bot"}})
    assert s == 422 and p["errors"][0]["path"] == "$.settings.bot_username"
