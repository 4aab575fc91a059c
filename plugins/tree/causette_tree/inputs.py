"""Validators of `input` nodes: each turns a typed answer into the value saved, or None."""
from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any, Callable

from .compiled import found, runtime_pattern

if TYPE_CHECKING:
    from regex import Pattern

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_NUMBER = re.compile(r"^[+-]?(\d{1,3}([ \u00a0\u202f.,]\d{3})+|\d+)([.,]\d+)?$")
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y", "%d %m %Y")


def text(answer: str, node: Any) -> str | None:
    s = " ".join(answer.split())
    if not s:
        return None
    if node.min is not None and len(s) < node.min:
        return None
    if node.max is not None and len(s) > node.max:
        return None
    return s


def email(answer: str, node: Any) -> str | None:
    s = answer.strip().strip("<>.,;").replace(" ", "")
    if not _EMAIL.match(s) or len(s) > 254:
        return None
    local, domain = s.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def phone(answer: str, node: Any) -> str | None:
    """E.164 when the number says its country (+33..., 0033...), else the digits as typed."""
    s = answer.strip()
    plus = s.startswith("+") or s.startswith("00")
    digits = re.sub(r"[\s.\-()/]", "", s.lstrip("+"))
    if not digits.isdigit():
        return None
    if s.startswith("00"):
        digits = digits[2:]
    if not 8 <= len(digits) <= 15:
        return None
    return "+" + digits if plus else digits


def number(answer: str, node: Any) -> int | float | None:
    s = answer.strip().replace("\u00a0", " ").replace("\u202f", " ")
    if not _NUMBER.match(s):
        return None
    # "1 234,50" / "1,234.50" / "12,5": the last separator followed by 1-2 digits is decimal.
    m = re.search(r"[.,](\d{1,2})$", s)
    if m and not re.search(r"[.,]\d{3}$", s):
        whole, frac = s[:m.start()], m.group(1)
    else:
        whole, frac = s, ""
    whole = re.sub(r"[ .,]", "", whole)
    if len(whole.lstrip("+-")) > 18:
        return None       # beyond 64 bits: the session (msgpack) could not store it
    value: int | float = float(f"{whole}.{frac}") if frac else int(whole)
    if node.min is not None and value < node.min:
        return None
    if node.max is not None and value > node.max:
        return None
    return value


def date(answer: str, node: Any) -> str | None:
    """ISO date (YYYY-MM-DD); day first for slashed dates, as in French and most locales."""
    s = answer.strip()
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(s, fmt).date().isoformat()
        except ValueError:
            continue
    return None


def regex(answer: str, node: Any, compiled: "Pattern[str] | None" = None) -> str | None:
    s = answer.strip()
    # A compiled flow passes its pattern; a caller without one must not fail the turn on a
    # pattern refused since publishing: it matches nothing, as in a compiled flow.
    pat = compiled or runtime_pattern(node.pattern)
    return s if found(pat.fullmatch, s) else None


VALIDATORS: dict[str, Callable[..., Any]] = {
    "text": text, "email": email, "phone": phone, "number": number, "date": date, "regex": regex,
}

DEFAULT_RETRY = {
    "choice": {"fr": "Je n'ai pas compris. Choisissez une des réponses proposées.",
               "en": "Sorry, I didn't get that. Please pick one of the options."},
    "text": {"fr": "Pouvez-vous reformuler ?", "en": "Could you say that again?"},
    "email": {"fr": "Cette adresse e-mail ne semble pas valide. Pouvez-vous la vérifier ?",
              "en": "That e-mail address doesn't look right. Could you check it?"},
    "phone": {"fr": "Ce numéro de téléphone ne semble pas valide.",
              "en": "That phone number doesn't look right."},
    "number": {"fr": "Merci d'indiquer un nombre.", "en": "Please answer with a number."},
    "date": {"fr": "Merci d'indiquer une date, par exemple 24/12/2027.",
             "en": "Please give a date, for example 2027-12-24."},
    "regex": {"fr": "Ce format n'est pas reconnu. Pouvez-vous réessayer ?",
              "en": "That format isn't recognised. Could you try again?"},
}
