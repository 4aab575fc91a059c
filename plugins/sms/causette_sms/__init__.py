"""Causette SMS channels: Twilio and Vonage, and the SMS consent keywords.

Registers the channel types `twilio` and `vonage`. When a tenant enables the `sms` plugin,
its `inbound_message` hook answers the consent keywords on those channels before the flow
runs: STOP (and ARRET, UNSUBSCRIBE...) marks the session stopped and confirms, START
resumes (so does YES/OUI from a stopped contact), HELP answers the tenant's help text.
The channel itself tags keywords (kind "optout"/"optin", payload "stop"/"start"/
"help", or "provider:..." when Twilio's Advanced Opt-Out already answered them).
"""
from __future__ import annotations

from typing import Any

import msgspec

from gateway.hookspecs import hookimpl
from gateway.types import InboundMessage, Reply

from . import keywords
from .segments import SegmentInfo, count, fit
from .twilio import TwilioChannel
from .vonage import VonageChannel

__all__ = ["Settings", "TwilioChannel", "VonageChannel", "SegmentInfo", "count", "fit"]

SMS_TYPES = frozenset({"twilio", "vonage"})


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The tenant's settings of the `sms` plugin. Empty texts use the built-in ones in the
    tenant's language (fr or en); `{brand}` is replaced by the tenant's name."""
    stop_text: str = ""
    start_text: str = ""
    help_text: str = ""
    # Twilio's Advanced Opt-Out answers STOP/START/HELP itself (and reports OptOutType):
    # answering again would send the contact two confirmations.
    answer_provider_keywords: bool = False


TEXTS = {
    "fr": {
        "stop": "{brand} : vous ne recevrez plus de messages. Envoyez START pour vous réabonner.",
        "start": "{brand} : vous êtes de nouveau abonné(e). Envoyez STOP pour ne plus recevoir de messages.",
        "help": "{brand} : répondez à nos questions par leur numéro. Envoyez STOP pour ne plus recevoir de messages.",
    },
    "en": {
        "stop": "{brand}: you are unsubscribed and will get no more messages. Reply START to resubscribe.",
        "start": "{brand}: you are subscribed again. Reply STOP to unsubscribe.",
        "help": "{brand}: answer our questions with their number. Reply STOP to unsubscribe.",
    },
}


@hookimpl
def register_channels() -> list[type]:
    return [TwilioChannel, VonageChannel]


def _brand(ctx: Any) -> str:
    cfg = ctx.tenant_config
    for obj in (cfg, getattr(cfg, "snapshot", None)):
        name = getattr(obj, "name", "") if obj is not None else ""
        if name:
            return name
    return ctx.tenant


def _locale(ctx: Any, message: InboundMessage) -> str:
    cfg = ctx.tenant_config
    loc = (ctx.session.locale or message.locale or getattr(cfg, "locale", "")
           or getattr(getattr(cfg, "snapshot", None), "locale", "") or "fr")
    return "fr" if loc.lower().startswith("fr") else "en"


def keyword_of(message: InboundMessage, stopped: bool) -> str:
    """stop / start / help for a consent message, "" otherwise."""
    word = message.payload.removeprefix("provider:")
    if message.kind == "optout":
        return "stop"
    if message.kind == "optin":
        return "start"
    if message.kind == "text" and word == "help":
        return "help"
    if stopped and message.kind == "text" and keywords.is_resume(message.text):
        return "start"
    return ""


@hookimpl(tryfirst=True)
def inbound_message(ctx: Any, message: InboundMessage) -> list[Reply] | None:
    """Answer STOP / START / HELP on the SMS channels before the flow sees them."""
    if ctx.channel_type not in SMS_TYPES or message.kind == "status":
        return None
    s = ctx.settings("sms") or Settings()
    word = keyword_of(message, ctx.session.stopped)
    if not word:
        return None     # the pipeline itself keeps a stopped contact's other messages unanswered
    if word == "stop":
        ctx.session.stopped = True
    elif word == "start":
        if message.kind != "optin":     # YES/OUI: the pipeline only records explicit opt-ins
            ctx.record("consent.optin", source=message.text)
        ctx.session.stopped = False
    if message.payload.startswith("provider:") and not s.answer_provider_keywords:
        return []
    if word in ("stop", "help"):
        # A stopped contact gets nothing but this: the STOP confirmation, and the HELP answer
        # that carriers require to stay available after an opt-out.
        ctx.meta["confirm_stop"] = True
    text = getattr(s, f"{word}_text") or TEXTS[_locale(ctx, message)][word]
    return [Reply(text=text.replace("{brand}", _brand(ctx)))]
