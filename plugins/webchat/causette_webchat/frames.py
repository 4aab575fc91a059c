"""The widget's WebSocket protocol: one msgspec Struct per frame, tagged by `type`.

Frames are JSON text. The client speaks first (`hello`), the server answers `ready`, then
replays what the client missed (`message` frames with `seq` above the client's `last_seq`)
and pushes new ones as they happen. docs/channels/webchat.md describes the exchange.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from gateway.types import Card, Choice, Media

MAX_FRAME = 16 * 1024        # bytes of one client frame; bigger ones get an error frame
# Client message ids: random, URL-safe, long enough not to collide between a visitor's messages.
ClientId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")     # the same, for re.fullmatch
VisitorId = Annotated[str, msgspec.Meta(pattern=r"^v_[A-Za-z0-9_-]{16,40}$")]
Short = Annotated[str, msgspec.Meta(max_length=2048)]


# --- client -> server --------------------------------------------------------------------
class Hello(msgspec.Struct, tag="hello", forbid_unknown_fields=True):
    """First frame of every connection. Without `visitor` the server issues a new identity."""
    visitor: VisitorId | None = None
    token: Annotated[str, msgspec.Meta(max_length=128)] = ""
    last_seq: Annotated[int, msgspec.Meta(ge=0)] = 0   # highest server seq the client has shown
    locale: Annotated[str, msgspec.Meta(max_length=35)] = ""   # navigator.language
    page: Short = ""


class Open(msgspec.Struct, tag="open", forbid_unknown_fields=True):
    """The visitor opened the panel (sent once per browser session)."""
    id: ClientId
    page: Short = ""
    ref: Annotated[str, msgspec.Meta(max_length=256)] = ""   # data-ref of the script tag


class Text(msgspec.Struct, tag="text", forbid_unknown_fields=True):
    id: ClientId
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]


class Pick(msgspec.Struct, tag="choice", forbid_unknown_fields=True):
    """A chip or card button clicked: `payload` is the Choice id, `text` its title."""
    id: ClientId
    payload: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    text: Annotated[str, msgspec.Meta(max_length=256)] = ""


class Seen(msgspec.Struct, tag="seen", forbid_unknown_fields=True):
    """The visitor has the panel open on this bot message (and on everything before it)."""
    id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{20}$")]


class Ping(msgspec.Struct, tag="ping", forbid_unknown_fields=True):
    pass


ClientFrame = Hello | Open | Text | Pick | Seen | Ping
client_decoder = msgspec.json.Decoder(ClientFrame)


# --- server -> client --------------------------------------------------------------------
class Message(msgspec.Struct, tag="message", omit_defaults=True):
    """One message of the conversation, as the widget shows it. The outbox stores these
    with a `seq` prepended (see outbox.lua), so a resumed client gets exactly what it missed."""
    id: str
    role: Literal["bot", "agent", "visitor"] = "bot"
    text: str = ""
    choices: list[Choice] = []
    cards: list[Card] = []
    media: list[Media] = []
    agent: str = ""
    ts: float = 0.0


class Ready(msgspec.Struct, tag="ready"):
    visitor: str
    token: str
    seq: int                 # the newest seq of this conversation; replay follows when above last_seq
    resumed: bool            # False: the client's last_seq is older than the kept history


class Ack(msgspec.Struct, tag="ack", omit_defaults=True):
    """The client's message was handled; `seq` is the conversation's newest seq after it, so
    the client keeps its typing indicator until it has shown everything up to there."""
    id: str
    seq: int = 0
    duplicate: bool = False


class Error(msgspec.Struct, tag="error", omit_defaults=True):
    code: str                # bad_frame, too_large, hello_first, bad_token, busy, rate_limited,
                             # internal, gone, origin_not_allowed
    message: str = ""
    id: str = ""             # the client message it is about, when there is one
    retry: bool = False      # the client may resend the same id later


class Pong(msgspec.Struct, tag="pong"):
    pass


ServerFrame = Ready | Message | Ack | Error | Pong
encoder = msgspec.json.Encoder()
server_decoder = msgspec.json.Decoder(ServerFrame)


class _Seq(msgspec.Struct):
    seq: int


_seq_decoder = msgspec.json.Decoder(_Seq)


def frame_seq(raw: bytes | str) -> int:
    """The seq of a stored/published frame (0 when it has none)."""
    try:
        return _seq_decoder.decode(raw).seq
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0
