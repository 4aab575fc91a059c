"""What every configuration of the bench shares: the dialog, the request bodies, the secret.

The dialog is a 3-step button tree: "bonjour" (re)starts it and gets the first question with
three buttons, the button press gets the second question, the second press ends it with a
code. Users cycle through it: request n goes to user n % USERS, at step (n // USERS) % 3.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

import msgspec

SECRET = "bench-webhook-secret"
USERS = 10_000
HEADER = "X-Causette-Signature"
TENANT = "bench"
CHANNEL = "hook"

ASK1 = {"text": "Bonjour Camille ! Que cherchez-vous pour les soldes d'hiver ?",
        "choices": [{"id": "w", "title": "Femme"}, {"id": "m", "title": "Homme"},
                    {"id": "k", "title": "Enfant"}]}
ASK2 = {"text": "Parfait. Quelle taille vous faut-il ?",
        "choices": [{"id": "s", "title": "S"}, {"id": "m", "title": "M"}, {"id": "l", "title": "L"}]}
DONE = {"text": "Merci ! Votre code de réduction : HIVER20. À bientôt !"}

# What each step sends: (text, payload). Step 0 restarts the dialog.
STEPS = (("bonjour", ""), ("Femme", "w"), ("M", "m"))

# Unknown fields that a real integration sends along; they make the body ~300 bytes.
CONTEXT = ('{"page":"https://shop.example.com/soldes/femme?utm_source=sms&utm_campaign=hiver",'
           '"app":"shop-ios/5.12.1","ip":"203.0.113.42","visit":"7f3c9a2e51b04d8e1a20"}')


def user_id(u: int) -> str:
    return f"u{u:05d}"


def body(prefix: str, n: int, tenants: int = 1) -> tuple[str, bytes]:
    """(path, body) of request n of a run; `prefix` makes message ids unique across runs."""
    u = n % USERS
    text, payload = STEPS[(n // USERS) % 3]
    pl = f',"payload":"{payload}"' if payload else ""
    raw = (f'{{"id":"{prefix}-{n}","from":"{user_id(u)}","text":"{text}"{pl},'
           f'"name":"Camille Dupont","locale":"fr","ts":1764150000.125,"context":{CONTEXT}}}').encode()
    return path_for(u, tenants), raw


def path_for(u: int, tenants: int = 1) -> str:
    if tenants <= 1:
        return f"/t/{TENANT}/channels/{CHANNEL}"
    return f"/t/{TENANT}-{u % tenants:05d}/channels/{CHANNEL}"


def sign(raw: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()


def flow() -> dict[str, Any]:
    """The dialog as a Causette tree flow (design section 5)."""
    return {
        "format": 1, "id": "soldes", "name": "Soldes d'hiver", "engine": "tree", "locale": "fr",
        "triggers": [{"type": "keyword", "any": ["bonjour"]}, {"type": "start"}],
        "start": "ask1",
        "nodes": {
            "ask1": {"type": "choice", "text": ASK1["text"], "save_as": "category",
                     "choices": [dict(c, next="ask2") for c in ASK1["choices"]]},
            "ask2": {"type": "choice", "text": ASK2["text"], "save_as": "size",
                     "choices": [dict(c, next="done") for c in ASK2["choices"]]},
            "done": {"type": "end", "outcome": "converted", "text": DONE["text"]},
        },
    }


def tenant(slug: str = TENANT) -> dict[str, Any]:
    """A tenant whose only channel is the signed webhook and whose bot is the dialog."""
    return {"slug": slug, "name": f"Bench {slug}", "locale": "fr",
            "plugins": {"tree": {}, "webhook": {}},
            "channels": [{"id": CHANNEL, "type": "webhook", "settings": {"secret": SECRET}}],
            "flows": [flow()]}


# --- the floors' session: what a lean hand-written bot keeps per user (~500 bytes) -------------
class FloorSession(msgspec.Struct, array_like=True, omit_defaults=True):
    node: str = ""
    vars: dict[str, str] = {}
    contact: dict[str, str] = {}
    history: list[str] = []
    started: float = 0.0
    last_in: float = 0.0
    msgs: int = 0


def floor_session_seed(user: str) -> FloorSession:
    # Realistic contact attributes that a brand's bot carries: this makes ~500 bytes of msgpack.
    return FloorSession(contact={
        "id": user, "first_name": "Camille", "last_name": "Dupont", "locale": "fr",
        "email": "camille.dupont@example.com", "phone": "+33612345678", "tz": "Europe/Paris",
        "segment": "vip-hiver-2026", "source": "sms-jan", "store": "Paris Opéra",
        "consent": "sms:2026-01-03T10:00:00Z;email:2025-11-20T08:31:00Z",
        "last_order": "2025-12-18:EUR149.90:ORD-883311", "loyalty": "gold:1840pts",
        "address": "12 rue de la Paix, 75002 Paris, France",
        "ua": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15",
    })
