"""The channel contract (gateway.conformance) run over the wechat channel."""
from causette_wechat.conformance import WeChatCase

from gateway.conformance import ChannelConformance


class TestWeChatConformance(ChannelConformance):
    case = WeChatCase()
