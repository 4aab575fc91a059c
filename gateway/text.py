"""Text helpers channels share when they render within a provider's limits."""
from __future__ import annotations


def clip(text: str, n: int) -> str:
    """At most n characters, with an ellipsis when something was cut (button titles)."""
    return text if len(text) <= n else text[: n - 1] + "…"


def split(text: str, n: int) -> list[str]:
    """Cut a long text into parts of at most n characters, at the last line break or space
    when it lies in the second half of the part, else hard."""
    parts: list[str] = []
    while len(text) > n:
        cut = max(text.rfind("\n", 0, n), text.rfind(" ", 0, n))
        if cut <= n // 2:
            cut = n
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts
