"""Messenger Platform webhook and Send API shapes (only the fields we read).

Unknown fields are ignored: Meta adds fields often, and a new one must never make us drop a
customer's message.
"""
from __future__ import annotations

import msgspec


class Party(msgspec.Struct):
    id: str = ""
    user_ref: str = ""          # chat plugin visitors before they have a PSID


class QuickReply(msgspec.Struct):
    payload: str = ""


class Coordinates(msgspec.Struct):
    lat: float = 0.0
    long: float = 0.0


class AttachmentPayload(msgspec.Struct):
    url: str = ""
    title: str = ""
    sticker_id: int = 0
    coordinates: Coordinates | None = None


class Attachment(msgspec.Struct):
    type: str = ""              # image, audio, video, file, location, fallback, template
    payload: AttachmentPayload | None = None
    title: str = ""             # legacy location pins carry their name here


class Referral(msgspec.Struct):
    ref: str = ""
    source: str = ""            # SHORTLINK (m.me), ADS, CUSTOMER_CHAT_PLUGIN, MESSENGER_CODE...
    type: str = ""              # OPEN_THREAD
    ad_id: str = ""
    referer_uri: str = ""


class Message(msgspec.Struct):
    mid: str = ""
    text: str = ""
    is_echo: bool = False
    quick_reply: QuickReply | None = None
    attachments: list[Attachment] = []
    referral: Referral | None = None


class Postback(msgspec.Struct):
    mid: str = ""
    title: str = ""
    payload: str = ""
    referral: Referral | None = None


class Delivery(msgspec.Struct):
    mids: list[str] = []
    watermark: int = 0


class Read(msgspec.Struct):
    watermark: int = 0


class Optin(msgspec.Struct):
    type: str = ""
    payload: str = ""
    ref: str = ""
    notification_messages_status: str = ""   # STOP_NOTIFICATIONS / RESUME_NOTIFICATIONS


class ThreadControl(msgspec.Struct):
    new_owner_app_id: str | int = ""
    previous_owner_app_id: str | int = ""
    requested_owner_app_id: str | int = ""
    metadata: str = ""


class Messaging(msgspec.Struct):
    sender: Party = msgspec.field(default_factory=Party)
    recipient: Party = msgspec.field(default_factory=Party)
    timestamp: int = 0
    message: Message | None = None
    postback: Postback | None = None
    referral: Referral | None = None
    delivery: Delivery | None = None
    read: Read | None = None
    optin: Optin | None = None
    pass_thread_control: ThreadControl | None = None
    take_thread_control: ThreadControl | None = None
    request_thread_control: ThreadControl | None = None


class Entry(msgspec.Struct):
    id: str = ""
    time: int = 0
    messaging: list[Messaging] = []
    # events while another app owns the thread (handover protocol): not ours to answer
    standby: list[Messaging] = []


class Envelope(msgspec.Struct):
    object: str = ""
    entry: list[Entry] = []


ENVELOPE = msgspec.json.Decoder(Envelope)


class GraphError(msgspec.Struct):
    code: int = 0
    message: str = ""
    type: str = ""
    error_subcode: int = 0


class ErrorBody(msgspec.Struct):
    error: GraphError = msgspec.field(default_factory=GraphError)


ERROR = msgspec.json.Decoder(ErrorBody)


class SendAnswer(msgspec.Struct):
    recipient_id: str = ""
    message_id: str = ""


SEND_ANSWER = msgspec.json.Decoder(SendAnswer)
