"""The channel conformance kit over Messenger."""
from causette_messenger.conformance import MessengerCase

from gateway.conformance import ChannelConformance


class TestMessengerConformance(ChannelConformance):
    case = MessengerCase()
