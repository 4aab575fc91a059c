"""The core's channel conformance kit over both SMS channels."""
from causette_sms.conformance import TwilioCase, VonageCase
from gateway.conformance import ChannelConformance


class TestTwilioConformance(ChannelConformance):
    case = TwilioCase()


class TestVonageConformance(ChannelConformance):
    case = VonageCase()
