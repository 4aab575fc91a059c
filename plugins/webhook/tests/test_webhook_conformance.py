"""The core's channel conformance kit over the webhook channel."""
from causette_webhook.conformance import WebhookCase
from gateway.conformance import ChannelConformance


class TestWebhookConformance(ChannelConformance):
    case = WebhookCase()
