"""The channel conformance kit on the webchat channel: its rendering and settings checks.
The webhook checks the kit has no skip for are overridden here, with the reason."""
from __future__ import annotations

import msgspec
import pytest

from causette_webchat.conformance import WebchatCase
from gateway.channels import Capabilities, Channel
from gateway.conformance import ChannelConformance

NO_WEBHOOK = "webchat has no provider webhook: visitors come in over the WebSocket"


class TestWebchatConformance(ChannelConformance):
    case = WebchatCase()

    def test_class_attributes(self, channel_case):
        # The kit's check, but for `api_base`: webchat has no provider to point at.
        cls = channel_case.channel
        assert issubclass(cls, Channel) and cls.type == "webchat"
        assert issubclass(cls.Settings, msgspec.Struct) and cls.secrets == ()
        caps = cls.capabilities
        assert isinstance(caps, Capabilities) and caps.text_length > 0 and caps.window_hours == 0
        assert 400 <= cls.refusal_status < 500 and 400 <= cls.bad_request_status < 500
        msgspec.json.schema(cls.Settings)

    def test_verify_accepts_right_signature(self, channel_case, channel):
        pytest.skip(NO_WEBHOOK)

    def test_parse_signed_text(self, channel_case, channel):
        pytest.skip(NO_WEBHOOK)
