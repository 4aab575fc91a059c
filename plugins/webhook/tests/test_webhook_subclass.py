"""Third parties subclass the webhook channel: its instances have no dictionary (slots), so
the per-instance capabilities (no inline answers with a callback) go through a descriptor that
a subclass's own Capabilities must keep."""
from causette_webhook import Settings, WebhookChannel
from gateway.channels import Capabilities


class Narrow(WebhookChannel):
    type = "narrow-webhook"
    capabilities = Capabilities(inline=5, buttons=3)


class Extra(WebhookChannel):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.note = "subclasses without __slots__ get a dictionary"


def test_a_subclass_keeps_its_capabilities_and_the_callback_narrowing():
    inline = Narrow("t", "c", Settings(secret="s"))
    callback = Narrow("t", "c", Settings(secret="s", callback_url="http://127.0.0.1:1/cb"))
    assert (inline.capabilities.inline, inline.capabilities.buttons) == (5, 3)
    assert (callback.capabilities.inline, callback.capabilities.buttons) == (0, 3)
    assert Narrow.capabilities.inline == 5 and WebhookChannel.capabilities.inline == 10


def test_a_subclass_may_set_its_own_attributes():
    ch = Extra("t", "c", Settings(secret="s"))
    assert ch.note and ch.capabilities.inline == 10
    assert not hasattr(WebhookChannel("t", "c", Settings(secret="s")), "__dict__")
