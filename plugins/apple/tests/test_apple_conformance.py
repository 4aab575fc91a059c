"""The channel contract (gateway.conformance) run over the apple channel."""
from causette_apple.conformance import AppleCase

from gateway.conformance import ChannelConformance


class TestAppleConformance(ChannelConformance):
    case = AppleCase()
