"""The channel contract (gateway.conformance) run over the rcs channel."""
from causette_rcs.conformance import RCSCase

from gateway.conformance import ChannelConformance


class TestRCSConformance(ChannelConformance):
    case = RCSCase()
