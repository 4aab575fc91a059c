"""GSM-7 / UCS-2 detection and segment counting, and fitting a text into N segments.

An SMS carries 140 bytes: 160 GSM-7 septets or 70 UCS-2 code units. A longer text is
sent as a concatenated message whose parts lose 6 bytes to the UDH header: 153 septets or
67 code units per part. GSM-7 extension characters (`^{}\\[~]|€` and form feed) take two
septets (escape + char), and a character outside the BMP (most emoji) takes two UTF-16
code units. Carriers never split an escape pair or a surrogate pair across parts, so a
part may hold one unit fewer than its capacity: parts are packed greedily, as phones do.
A single non-GSM character turns the whole message into UCS-2.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Literal

import msgspec

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE = {"gsm7": 160, "ucs2": 70}
PART = {"gsm7": 153, "ucs2": 67}

Encoding = Literal["gsm7", "ucs2"]


class SegmentInfo(msgspec.Struct, frozen=True):
    encoding: Encoding
    units: int          # septets (gsm7) or UTF-16 code units (ucs2)
    segments: int       # SMS parts billed; 0 for an empty text
    per_segment: int    # capacity of one part for this text (160/153 or 70/67)
    remaining: int      # units still free in the last part


_NOT_GSM7 = re.compile("[^" + re.escape("".join(sorted(GSM7_BASIC | GSM7_EXTENSION))) + "]")
_EXTENSION = re.compile("[" + re.escape("".join(sorted(GSM7_EXTENSION))) + "]")
_ASTRAL = re.compile("[\U00010000-\U0010FFFF]")


def is_gsm7(text: str) -> bool:
    """True when every character has a GSM 03.38 encoding (basic or extension table)."""
    return _NOT_GSM7.search(text) is None


def encoding(text: str) -> Encoding:
    return "gsm7" if is_gsm7(text) else "ucs2"


def _widths(text: str, enc: Encoding) -> list[int]:
    if enc == "gsm7":
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def _pack(widths: list[int], capacity: int) -> tuple[int, int]:
    """Parts used and units in the last part when packing without splitting a character."""
    parts, used = 1, 0
    for w in widths:
        if used + w > capacity:
            parts, used = parts + 1, 0
        used += w
    return parts, used


def count(text: str) -> SegmentInfo:
    """How `text` is encoded and how many SMS segments it costs."""
    enc = encoding(text)
    wide = (_EXTENSION if enc == "gsm7" else _ASTRAL).findall(text)
    units = len(text) + len(wide)
    if units == 0:
        return SegmentInfo(enc, 0, 0, SINGLE[enc], SINGLE[enc])
    if units <= SINGLE[enc]:
        return SegmentInfo(enc, units, 1, SINGLE[enc], SINGLE[enc] - units)
    if wide:        # a double-width character may not fit at the end of a part: pack for real
        parts, last = _pack(_widths(text, enc), PART[enc])
    else:
        parts, last = -(-units // PART[enc]), (units - 1) % PART[enc] + 1
    return SegmentInfo(enc, units, parts, PART[enc], PART[enc] - last)


def ellipsis_for(text: str) -> str:
    """"…" is not in GSM-7: appending it to a GSM-7 text would switch the whole message to
    UCS-2 and more than double its cost, so GSM-7 texts end with three dots instead."""
    return "..." if is_gsm7(text) else "…"


def fit(text: str, max_segments: int, *, tail: str = "") -> str:
    """`text + tail` if it fits in `max_segments`, else `text` cut on a word boundary when one
    is near, followed by an ellipsis, then `tail` (numbered options stay whole). When `tail`
    alone does not fit, the whole string is cut instead. `max_segments <= 0` means no limit."""
    whole = text + tail
    if max_segments <= 0 or count(whole).segments <= max_segments:
        return whole
    if tail and count(ellipsis_for(whole) + tail).segments > max_segments:
        return fit(whole, max_segments)
    dots = ellipsis_for(whole)
    lo, hi = 0, len(text)   # largest prefix length that fits, by bisection
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid].rstrip() + dots + tail).segments <= max_segments:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    space = cut.rfind(" ")
    if space >= max(1, lo - 20):    # prefer a word boundary if it loses little
        cut = cut[:space]
    return cut.rstrip() + dots + tail


def to_gsm7(text: str) -> str:
    """Replace characters missing from GSM-7 by their closest GSM-7 form where one exists
    (ê -> e, ç -> c, ’ -> ', « -> "), so that a French text stays in the cheaper encoding.
    Characters with no GSM-7 form (emoji, CJK) are kept: the message then goes as UCS-2."""
    out = []
    for c in text:
        if c in GSM7_BASIC or c in GSM7_EXTENSION:
            out.append(c)
            continue
        sub = _SUBSTITUTES.get(c)
        if sub is None:
            base = "".join(b for b in unicodedata.normalize("NFKD", c) if not unicodedata.combining(b))
            sub = base if base and is_gsm7(base) else c
        out.append(sub)
    return "".join(out)


_SUBSTITUTES = {
    "’": "'", "‘": "'", "‚": "'", "“": '"', "”": '"', "„": '"', "«": '"', "»": '"',
    "–": "-", "—": "-", "…": "...", "\u00a0": " ", "\u202f": " ", "•": "-",
    "œ": "oe", "Œ": "OE",
}
