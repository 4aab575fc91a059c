"""The channel conformance kit on the webchat channel: its rendering and settings checks
(`WebchatCase.skip` names the webhook, provider and api_base checks that do not apply)."""
from __future__ import annotations

from causette_webchat.conformance import WebchatCase
from gateway.conformance import ChannelConformance


class TestWebchatConformance(ChannelConformance):
    case = WebchatCase()
