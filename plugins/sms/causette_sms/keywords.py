"""Consent keywords of SMS: opt-out (STOP), opt-in (START) and help.

Like carriers and Twilio, a keyword counts only when it is the whole message (case,
accents, surrounding spaces and final punctuation ignored): "stop" opts out, "stop the
music" does not. The lists hold the US/CA industry keywords and their French, Spanish,
German and Italian equivalents in common use.
"""
from __future__ import annotations

import unicodedata
from typing import Literal

Keyword = Literal["stop", "start", "help"]

STOP = frozenset({
    "stop", "stopall", "unsubscribe", "end", "quit", "cancel", "revoke", "optout", "opt out",
    "stop sms", "arret", "arreter", "stop pub", "desabonner", "desinscrire", "desabonnement",
    "desinscription", "stopp", "abmelden", "baja", "alto", "parar", "cancelar", "annulla",
})
START = frozenset({"start", "unstop", "optin", "opt in", "subscribe", "demarrer", "reprendre",
                   "abonner", "inscrire", "anmelden", "alta"})
HELP = frozenset({"help", "info", "aide", "hilfe", "ayuda", "aiuto"})
# Answers that re-subscribe only someone who has stopped (Twilio counts YES as START; a
# flow asking a yes/no question must still get its YES otherwise).
RESUME = frozenset({"yes", "oui", "si", "ja"})


def fold(text: str) -> str:
    nfkd = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in nfkd if not unicodedata.combining(c))
    return " ".join(bare.strip(" \t\r\n.!?;,:'\"").replace("-", " ").split())


def classify(text: str) -> Keyword | None:
    """The consent keyword `text` is, if the whole message is one."""
    word = fold(text)
    if not word or len(word) > 20:
        return None
    if word in STOP:
        return "stop"
    if word in START:
        return "start"
    if word in HELP:
        return "help"
    return None


def is_resume(text: str) -> bool:
    return fold(text) in RESUME
