"""Telegram Bot API shapes Causette reads and writes (the fields it uses; others ignored)."""
from __future__ import annotations

from typing import Any

import msgspec


class User(msgspec.Struct):
    id: int
    is_bot: bool = False
    first_name: str = ""
    last_name: str = ""
    username: str = ""
    language_code: str = ""


class Chat(msgspec.Struct):
    id: int
    type: str = "private"


class PhotoSize(msgspec.Struct):
    file_id: str
    width: int = 0
    height: int = 0


class File(msgspec.Struct):
    """document, audio, voice, video, video_note, sticker, animation."""
    file_id: str
    mime_type: str = ""
    file_name: str = ""
    emoji: str = ""


class GeoPoint(msgspec.Struct):
    latitude: float
    longitude: float


class Venue(msgspec.Struct):
    location: GeoPoint
    title: str = ""


class SharedContact(msgspec.Struct):
    phone_number: str
    first_name: str = ""
    user_id: int = 0


class InlineButton(msgspec.Struct, omit_defaults=True):
    text: str
    callback_data: str = ""
    url: str = ""


class InlineKeyboard(msgspec.Struct):
    inline_keyboard: list[list[InlineButton]]


class Message(msgspec.Struct, rename={"from_": "from"}):
    message_id: int
    chat: Chat
    date: int = 0
    from_: User | None = None
    text: str = ""
    caption: str = ""
    photo: list[PhotoSize] = []
    document: File | None = None
    audio: File | None = None
    voice: File | None = None
    video: File | None = None
    video_note: File | None = None
    animation: File | None = None
    sticker: File | None = None
    location: GeoPoint | None = None
    venue: Venue | None = None
    contact: SharedContact | None = None
    reply_markup: InlineKeyboard | None = None


class CallbackQuery(msgspec.Struct, rename={"from_": "from"}):
    id: str
    from_: User
    message: Message | None = None
    data: str = ""
    chat_instance: str = ""


class ChatMember(msgspec.Struct):
    status: str
    user: User | None = None


class ChatMemberUpdated(msgspec.Struct, rename={"from_": "from"}):
    chat: Chat
    from_: User
    date: int = 0
    old_chat_member: ChatMember | None = None
    new_chat_member: ChatMember | None = None


class Update(msgspec.Struct):
    update_id: int
    message: Message | None = None
    edited_message: Message | None = None
    channel_post: Message | None = None
    callback_query: CallbackQuery | None = None
    my_chat_member: ChatMemberUpdated | None = None


class CallbackId(msgspec.Struct):
    id: str


class CallbackOnly(msgspec.Struct):
    """Just enough of an update to answer a button tap."""
    callback_query: CallbackId | None = None


class Call(msgspec.Struct, omit_defaults=True):
    """One Bot API method call, rendered from a reply; `chat_id` is added when sending."""
    method: str
    text: str = ""
    photo: str = ""
    document: str = ""
    audio: str = ""
    video: str = ""
    sticker: str = ""
    caption: str = ""
    reply_markup: InlineKeyboard | None = None


class ResponseParameters(msgspec.Struct):
    retry_after: float = 0
    migrate_to_chat_id: int = 0


class ApiResponse(msgspec.Struct):
    ok: bool = False
    result: Any = None
    error_code: int = 0
    description: str = ""
    parameters: ResponseParameters | None = None
