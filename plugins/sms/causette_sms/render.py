"""Rendering normalized replies as SMS: text only, numbered options, flattened cards.

SMS has no buttons: choices become numbered lines ("1. Femme") that the flow engine
matches back from the number, the id or the title the contact types. Cards become one
paragraph each with their link. Media go as MMS attachments where the channel sends MMS,
else as links. The text is kept within `max_segments` (see `segments.fit`): the lead text
is cut first so the options stay whole.
"""
from __future__ import annotations

import msgspec

from gateway.types import Reply

from . import segments


class SmsMessage(msgspec.Struct, omit_defaults=True):
    """One rendered SMS/MMS, before the provider's own wire shape."""
    body: str
    media: list[str] = []     # public URLs (MMS)
    encoding: str = ""        # gsm7 / ucs2, as counted after fitting
    segments: int = 0


def options(reply: Reply) -> str:
    return "".join(f"\n{i}. {c.title}" for i, c in enumerate(reply.choices, 1))


def cards(reply: Reply) -> str:
    out = []
    for i, card in enumerate(reply.cards, 1):
        lines = [f"{i}. {card.title}" if len(reply.cards) > 1 else card.title]
        if card.subtitle:
            lines.append(card.subtitle)
        if card.url:
            lines.append(card.url)
        elif card.image:
            lines.append(card.image)
        out.append("\n".join(lines))
    return "\n\n".join(out)


def render(reply: Reply, *, max_segments: int, mms: bool = False, gsm_fallback: bool = False,
           max_chars: int = 1600) -> list[SmsMessage]:
    """One SmsMessage per reply (SMS concatenation carries long texts); an empty reply
    renders to nothing."""
    head = reply.text
    if reply.template and not head:
        # No provider templates on SMS: a template reference sends its parameters as text.
        head = " ".join(reply.template.params)
    flat = cards(reply)
    if flat:
        head = f"{head}\n\n{flat}" if head else flat
    media = [m.url for m in reply.media if m.url]
    if media and not mms:
        links = "\n".join(media)
        head = f"{head}\n{links}" if head else links
        media = []
    tail = options(reply)
    if gsm_fallback:
        head, tail = segments.to_gsm7(head), segments.to_gsm7(tail)
    if not head and tail:
        tail = tail.lstrip("\n")
    body = segments.fit(head, max_segments, tail=tail)
    if len(body) > max_chars:       # max_segments 0 (no limit) still meets the provider's cap
        dots = segments.ellipsis_for(body)
        body = body[: max_chars - len(dots)].rstrip() + dots
    if not body and not media:
        return []
    info = segments.count(body)
    return [SmsMessage(body=body, media=media, encoding=info.encoding, segments=info.segments)]
