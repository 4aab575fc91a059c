"""Extra plugins given to the `gateway` fixture (and PluginHost) under an installed name:
a plugin's own tests pass the installed module, or a stand-in, under its own name."""
import causette_tree
import pytest

from gateway.hookspecs import hookimpl
from gateway.plugins import PluginError, PluginHost


class StandIn:
    """Answers in place of the installed webhook plugin."""
    @hookimpl
    def inbound_message(self, message):
        return None


async def test_the_installed_module_under_its_own_name_is_the_same_plugin(gateway):
    gw = await gateway(plugins=[("tree", causette_tree)])
    assert gw.host.pm.get_plugin("tree") is causette_tree
    info = {p.name: p for p in gw.host.plugins}
    assert info["tree"].dist == "causette-tree"          # still the installed distribution
    assert "tree" in gw.host.engines


def test_a_stand_in_replaces_the_installed_plugin_of_that_name():
    h = PluginHost(extra=[("webhook", stand := StandIn())])
    assert h.pm.get_plugin("webhook") is stand
    assert "webhook" not in h.channels                  # the installed plugin's channel is gone
    info = {p.name: p for p in h.plugins}
    assert (info["webhook"].dist, info["webhook"].version) == ("webhook", "local")
    assert info["webhook"].hooks == ["inbound_message"]


def test_one_plugin_given_twice_is_registered_once():
    h = PluginHost(entrypoints=False, extra=[("s", stand := StandIn()), ("s", stand)])
    assert h.pm.get_plugin("s") is stand


def test_two_different_extra_plugins_with_one_name_are_an_error():
    with pytest.raises(PluginError, match="two extra plugins named 'tree'"):
        PluginHost(extra=[("tree", causette_tree), ("tree", StandIn())])
