"""The conformance kit itself: a channel that breaks the contract must fail it. Run as a
channel author runs it (an inner pytest session), against a channel that logs its secret."""
import textwrap

pytest_plugins = ("pytester",)

def kit_module(kind: str, send: str) -> str:
    """A test module running the kit on the webhook channel with `send` (a method's source,
    indented four spaces) in place of its own, as channel type `kind`: what a channel author's
    test file holds."""
    return textwrap.dedent('''
        import logging

        from causette_webhook.channel import WebhookChannel
        from causette_webhook.conformance import WebhookCase
        from gateway.conformance import ChannelConformance
        from gateway.types import SendResult


        class Broken(WebhookChannel):
            type = "{kind}"
    ''').format(kind=kind) + textwrap.indent(textwrap.dedent(send), "    ") + textwrap.dedent('''

        class BrokenCase(WebhookCase):
            channel = Broken


        class TestBroken(ChannelConformance):
            case = BrokenCase()
    ''')


LEAKY = kit_module("leaky", '''
    async def send(self, contact, payload, *, key):
        logging.getLogger("leaky").debug("calling with secret %s", self.settings.secret)
        return await super().send(contact, payload, key=key)
''')


def test_a_channel_that_logs_its_secret_fails_the_kit(pytester):
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest_subprocess("-q", "-k", "send or parse", "-p", "no:cacheprovider")
    out = result.stdout.str()
    # the log line comes while a check runs (pytest's call phase), not in its teardown
    assert "a secret of leaky reached the log" in out, out[-3000:]
    assert "test_send_ok" in out and "passed" in out, out[-3000:]      # the other checks still run


RAISES = kit_module("raw", '''
    async def send(self, contact, payload, *, key):
        # no gateway.provider.call: a cut connection raises out of send
        async with self.http.post(self.settings.api_base + "/hook", json={"to": contact}) as r:
            return SendResult(status="sent" if r.status < 300 else "retry")
''')


def test_a_send_that_raises_on_a_cut_connection_fails_the_kit(pytester):
    pytester.makepyfile(test_raw=RAISES)
    result = pytester.runpytest_subprocess("-q", "-k", "send", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)        # send_ok, 500 and 429 pass; the cut does not
    assert "test_send_connection_cut" in result.stdout.str()
