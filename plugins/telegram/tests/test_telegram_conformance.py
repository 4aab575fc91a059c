"""The core's channel conformance kit over the Telegram channel."""
from causette_telegram.conformance import TelegramCase
from gateway.conformance import ChannelConformance


class TestTelegramConformance(ChannelConformance):
    case = TelegramCase()
