"""Normalized shapes that cross the boundary between the core and plugins.

Every wire and stored shape is a msgspec Struct: one definition validates, encodes and
documents it. Channels turn provider payloads into `InboundMessage`s and render
`Reply`s; flow engines read a `Session` and return a `Turn`.
"""
from __future__ import annotations

from typing import Any, Literal

import msgspec

Kind = Literal[
    "text",       # free text typed by the contact
    "choice",     # a button / quick reply / list row; `payload` holds the choice id
    "postback",   # a menu item or persistent-menu click; `payload` holds its value
    "media",      # image, audio, video, file, sticker
    "location",
    "referral",   # an ad / deep-link / QR entry without text (m.me?ref=, wa.me, /start x)
    "status",     # delivery / read / failed status of one of our messages
    "optout",     # STOP and the like, when the provider reports it
    "optin",      # START and the like
    "open",       # the contact opened a chat surface (widget opened, conversation started)
]


class Referral(msgspec.Struct, omit_defaults=True):
    """Where the contact came from: an ad, a deep link, a QR code, a campaign."""
    source: str = ""          # "ad", "link", "qr", "campaign", "widget", ...
    ref: str = ""             # the brand's own tag (m.me ?ref=, /start payload, utm_campaign)
    url: str = ""


class Media(msgspec.Struct, omit_defaults=True):
    kind: Literal["image", "audio", "video", "file", "sticker"] = "file"
    url: str = ""
    id: str = ""              # provider media id when there is no URL yet
    mime: str = ""
    caption: str = ""


class Location(msgspec.Struct):
    lat: float
    lon: float
    name: str = ""


class InboundMessage(msgspec.Struct, omit_defaults=True):
    """One thing a contact did on a channel, normalized."""
    tenant: str
    channel: str              # channel instance id
    native_id: str            # the provider's id, used for deduplication
    contact: str              # the contact's address on this channel (phone, PSID, chat id)
    kind: Kind = "text"
    ts: float = 0.0           # unix seconds, provider time when given
    text: str = ""
    payload: str = ""         # choice id, postback payload
    media: list[Media] = []
    location: Location | None = None
    referral: Referral | None = None
    status: str = ""          # for kind="status": delivered, read, failed; "handback" when
                              # the provider's agent inbox returns the conversation to the bot
    refers_to: str = ""       # for kind="status": our message id it is about
    profile: dict[str, str] = {}  # what the channel tells about the sender (name, locale)
    locale: str = ""


class Choice(msgspec.Struct, omit_defaults=True):
    """A button, quick reply or list row offered to the contact."""
    id: str
    title: str
    description: str = ""


class Card(msgspec.Struct, omit_defaults=True):
    """One element of a carousel / rich card."""
    title: str
    subtitle: str = ""
    image: str = ""
    url: str = ""
    buttons: list[Choice] = []


class TemplateRef(msgspec.Struct, omit_defaults=True):
    """A provider-approved template, for replies outside a messaging window."""
    name: str
    language: str = "en"
    params: list[str] = []


class Reply(msgspec.Struct, omit_defaults=True):
    """One message the bot (or an agent) sends, before the channel renders it."""
    text: str = ""
    choices: list[Choice] = []
    cards: list[Card] = []
    media: list[Media] = []
    template: TemplateRef | None = None
    tag: str = ""             # Messenger message tag / reason for an out-of-window send
    from_agent: str = ""      # set when a human agent wrote it


SendStatus = Literal["sent", "retry", "failed", "stopped", "held"]


class SendResult(msgspec.Struct, omit_defaults=True):
    """The typed outcome of sending one rendered reply (design 4b); never a bare exception."""
    status: SendStatus
    provider_id: str = ""     # the provider's message id when sent
    retry_after: float = 0.0  # seconds, for status="retry"
    code: str = ""            # the provider's error code, for failed / stopped / held
    detail: str = ""          # human-readable reason (never a secret)


class Resend(msgspec.Struct, omit_defaults=True):
    """Replies of a turn that the provider asked to get later (a send ended `retry`): kept in
    Redis until due, then sent in order by whichever process claims them (design 4b)."""
    channel: str
    contact: str
    replies: list[Reply]
    keys: list[str]           # each reply's idempotency key prefix (`<turn key>:<i>`), as first sent
    first: int = 0            # the payload of replies[0] to start from (earlier ones went out)
    attempt: int = 1          # sends tried so far, the turn's own included
    since: float = 0.0        # when the turn ran: a newer message from the contact supersedes it
    v: str = ""               # new at every write: a sender's dedup mark names the version it
                              # claimed, so a version is never sent twice nor a new one refused


class Event(msgspec.Struct, omit_defaults=True):
    """Something that happened in a conversation; recorded in the store in batches."""
    type: str                 # message.in, message.out, send.failed, flow.started, flow.ended,
                              # handoff.requested, handoff.released, step.failed, optout, ...
    tenant: str
    channel: str
    contact: str
    ts: float
    flow: str = ""
    version: int = 0
    node: str = ""
    data: dict[str, Any] = {}


class Session(msgspec.Struct, array_like=True, omit_defaults=True):
    """Live state of one conversation, msgpack-encoded in Redis under the tenant's key.

    array_like keeps it small (no field names on the wire); append new fields at the
    end, with defaults, so older sessions still decode.
    """
    flow: str = ""            # flow id the conversation is in ("" when idle)
    version: int = 0          # published version the conversation started on
    node: str = ""            # node waiting for the contact's answer
    vars: dict[str, Any] = {} # flow variables
    contact: dict[str, Any] = {}  # contact attributes known to the flow (first_name, email...)
    started: float = 0.0      # when the current flow run began
    last_in: float = 0.0      # last inbound message (messaging windows)
    msgs: int = 0             # messages in this run, both ways
    retries: int = 0          # failed answers to the current node
    human: str = ""           # handoff queue / agent holding the conversation ("" = bot)
    locale: str = ""
    source: str = ""          # traffic source of this run (referral ref, campaign)
    stopped: bool = False     # the contact opted out on this channel
    extra: dict[str, Any] = {}  # engine-specific state (loop counters, split variants)
    outcome: str = ""         # set when the run ended: completed, converted, abandoned
    resend: str = ""          # id of replies the provider asked to get later, still waiting:
                              # a later turn's replies queue behind them


class Problem(msgspec.Struct):
    """One validation problem, RFC 9457-style, with the JSON path of what is wrong.
    Always encoded with all four fields (tools filter on severity)."""
    path: str
    code: str
    message: str
    severity: Literal["error", "warning"] = "error"


class Turn(msgspec.Struct, omit_defaults=True):
    """What a flow engine returns after advancing one step."""
    replies: list[Reply] = []
    events: list[Event] = []
    handoff: dict[str, Any] | None = None   # {"queue": ..., "reason": ...} when a human is needed
    ended: str = ""                           # outcome when the run ended
    wait: float = 0.0                         # >0: resume this conversation after so many seconds
                                              # (wait node, reminder or no-answer timeout); the
                                              # engine is then called with message=None and
                                              # ctx.meta["reason"] == "timer"
