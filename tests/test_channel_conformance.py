"""The conformance kit over every installed channel that registers a case (entry-point group
`causette.conformance`), exactly as a third party's channel gets it."""
from gateway.conformance import TestInstalledChannels, installed_cases


def test_every_first_party_channel_registers_a_case():
    types = {name for name, _ in installed_cases()}
    assert {"whatsapp", "messenger", "twilio", "vonage", "telegram", "rcs", "apple", "wechat",
            "webhook", "webchat"} <= types


__all__ = ["TestInstalledChannels"]
