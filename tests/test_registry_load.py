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
