"""WhatsApp Cloud API webhook and error shapes (only the fields we read).

Unknown fields are ignored: Meta adds fields often, and a new one must never make us drop a
customer's message.
"""
from __future__ import annotations

import msgspec


class Text(msgspec.Struct):
    body: str = ""


class Reply(msgspec.Struct):
    id: str = ""
    title: str = ""
    description: str = ""


class Interactive(msgspec.Struct):
    type: str = ""
    button_reply: Reply | None = None
    list_reply: Reply | None = None


class Button(msgspec.Struct):
    payload: str = ""
    text: str = ""


class MediaObj(msgspec.Struct):
    id: str = ""
    mime_type: str = ""
    caption: str = ""
    filename: str = ""
    url: str = ""
    voice: bool = False


class LocationObj(msgspec.Struct):
    latitude: float = 0.0
    longitude: float = 0.0
    name: str = ""
    address: str = ""


class Referral(msgspec.Struct):
    """Click-to-WhatsApp ads and posts."""
    source_url: str = ""
    source_id: str = ""
    source_type: str = ""       # "ad" | "post"
    headline: str = ""
    ctwa_clid: str = ""


class Context(msgspec.Struct):
    id: str = ""
    # set when the user writes from a product's "Message business" button
    referred_product: dict | None = None


class Message(msgspec.Struct):
    id: str
    type: str = ""
    timestamp: str | int | float = "0"   # a string of digits; a number is read too
    text: Text | None = None
    interactive: Interactive | None = None
    button: Button | None = None
    image: MediaObj | None = None
    audio: MediaObj | None = None
    video: MediaObj | None = None
    document: MediaObj | None = None
    sticker: MediaObj | None = None
    location: LocationObj | None = None
    referral: Referral | None = None
    context: Context | None = None
    # `from` is a Python keyword
    sender: str = msgspec.field(name="from", default="")


class Profile(msgspec.Struct):
    name: str = ""


class ContactObj(msgspec.Struct):
    wa_id: str = ""
    profile: Profile | None = None


class StatusError(msgspec.Struct):
    code: int = 0
    title: str = ""
    message: str = ""


class Status(msgspec.Struct):
    id: str
    status: str = ""
    timestamp: str | int | float = "0"   # a string of digits; a number is read too
    recipient_id: str = ""
    errors: list[StatusError] = []


class Metadata(msgspec.Struct):
    phone_number_id: str = ""
    display_phone_number: str = ""


class Value(msgspec.Struct):
    messaging_product: str = ""
    metadata: Metadata | None = None
    contacts: list[ContactObj] = []
    messages: list[Message] = []
    statuses: list[Status] = []


class Change(msgspec.Struct):
    field: str = ""
    value: Value | None = None


class Entry(msgspec.Struct):
    id: str = ""
    changes: list[Change] = []


class Envelope(msgspec.Struct):
    object: str = ""
    entry: list[Entry] = []


ENVELOPE = msgspec.json.Decoder(Envelope)


class GraphError(msgspec.Struct):
    code: int = 0
    message: str = ""
    type: str = ""
    error_subcode: int = 0
    error_data: dict = {}


class ErrorBody(msgspec.Struct):
    error: GraphError = msgspec.field(default_factory=GraphError)


ERROR = msgspec.json.Decoder(ErrorBody)


class SentMessage(msgspec.Struct):
    id: str = ""


class SendAnswer(msgspec.Struct):
    messages: list[SentMessage] = []


SEND_ANSWER = msgspec.json.Decoder(SendAnswer)
