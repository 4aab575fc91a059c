"""RBM webhook shapes (Pub/Sub push envelope, UserMessage, UserEvent, ServerEvent)."""
from __future__ import annotations

import msgspec


class PubSubMessage(msgspec.Struct, rename="camel"):
    data: str = ""
    message_id: str = ""
    publish_time: str = ""
    attributes: dict[str, str] = {}


class Envelope(msgspec.Struct, rename="camel"):
    """What Google POSTs: a Pub/Sub push envelope, or the one-off verification request."""
    message: PubSubMessage | None = None
    subscription: str = ""
    client_token: str | None = None     # verification request only
    secret: str | None = None


class SuggestionResponse(msgspec.Struct, rename="camel"):
    postback_data: str = ""
    text: str = ""
    type: str = ""                      # REPLY | ACTION


class LatLng(msgspec.Struct):
    latitude: float
    longitude: float


class FileInfo(msgspec.Struct, rename="camel"):
    mime_type: str = ""
    file_size_bytes: int = 0
    file_uri: str = ""
    file_name: str = ""


class UserFile(msgspec.Struct):
    thumbnail: FileInfo | None = None
    payload: FileInfo | None = None


class Payload(msgspec.Struct, rename="camel"):
    """The decoded `message.data`: a UserMessage, a UserEvent or a ServerEvent (one shape,
    every field optional, since Pub/Sub does not say which it is)."""
    sender_phone_number: str = ""
    phone_number: str = ""              # server events
    message_id: str = ""
    event_id: str = ""
    event_type: str = ""
    send_time: str = ""
    agent_id: str = ""
    text: str | None = None
    user_file: UserFile | None = None
    location: LatLng | None = None
    suggestion_response: SuggestionResponse | None = None


class GoogleError(msgspec.Struct):
    code: int = 0
    message: str = ""
    status: str = ""


class ErrorBody(msgspec.Struct):
    error: GoogleError = msgspec.field(default_factory=GoogleError)


ENVELOPE = msgspec.json.Decoder(Envelope)
PAYLOAD = msgspec.json.Decoder(Payload)
ERROR = msgspec.json.Decoder(ErrorBody)
