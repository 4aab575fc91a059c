"""The channel conformance kit over WhatsApp."""
from causette_whatsapp.conformance import WhatsAppCase

from gateway.conformance import ChannelConformance


class TestWhatsAppConformance(ChannelConformance):
    case = WhatsAppCase()
