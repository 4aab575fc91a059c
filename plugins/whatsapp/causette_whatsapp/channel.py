"""WhatsApp Business Cloud API channel (Meta Graph API).

Inbound: `GET` hub.* handshake answered with the bare challenge; `POST` JSON signed with
`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`, batching entries,
changes, messages and statuses. Outbound: `POST {api_base}/{version}/{phone_number_id}/messages`
with a Bearer token. The Cloud API has no idempotency key, so a retry after a timeout can
duplicate a message; we retry only what the API says is transient.
"""
from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any
from urllib.parse import quote

import msgspec

from gateway.text import clip, split
from gateway.channels import (ApiBase, Attempts, CallTimeout, Capabilities, Channel, ParseError, Webhook, hub_handshake, sha256_signature_ok)
from gateway.types import (
    Card,
    Choice,
    InboundMessage,
    Location,
    Media,
    Referral,
    Reply,
    SendResult,
)

from gateway import provider

from . import wire

MAX_TEXT = 4096
MAX_BODY = 1024          # body of an interactive message; caption of a media message
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256
MAX_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_ROW_ID = 200
MAX_HEADER = 60

# A wa.me link's prefilled text carries the brand's ref as "[ref:<ref>]"; parse strips it.
REF_MARK = re.compile(r"\s*\[ref:([A-Za-z0-9_.\-]{1,64})\]\s*")

# Graph error codes (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes)
THROTTLED = {4, 80007, 130429, 131056, 131057, 613}     # retry later
TRANSIENT = {1, 2, 131000, 133004}                      # temporary server-side trouble
STOPPED = {131050}       # the user stopped marketing messages from this business
UNREACHABLE = {131026, 131030, 131045, 131049, 130472}  # undeliverable, not a WhatsApp user...
WINDOW = {131047}        # re-engagement: more than 24 h since the user's last message
AUTH = {0, 10, 190, 200, 3}


def _ts(raw: str | int | float) -> float:
    """Unix seconds of a webhook's timestamp; 0 when unreadable ("", "abc", "nan", "1e400"):
    one odd value must not refuse the whole batch, the other contacts' messages with it."""
    try:
        ts = float(raw or 0)
    except (ValueError, OverflowError):    # OverflowError: an integer of hundreds of digits
        return 0.0
    return ts if math.isfinite(ts) else 0.0


class Settings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Settings of one WhatsApp business phone number (a channel instance)."""
    # From WhatsApp Manager / API Setup; never empty: it is in every send's path, and the
    # filter that keeps another number's webhooks out of this instance.
    phone_number_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^/?#\s]+(?!\n)$")]
    # Secrets. An instance may be saved before the brand has them all: without `app_secret`
    # every webhook is refused, without `verify_token` the handshake, without `access_token`
    # every send fails (code config); docs/channels/whatsapp.md.
    access_token: str = ""             # system-user token with whatsapp_business_messaging
    app_secret: str = ""               # the Meta app's secret: signs webhooks
    verify_token: str = ""             # your own string, pasted in the webhook settings
    display_phone: str = ""            # the number in international digits, for wa.me links
    link_text: str = "Bonjour !"       # prefilled text of wa.me links
    list_button: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BUTTON_TITLE)] = "Options"  # opens a list
    api_base: ApiBase = "https://graph.facebook.com"
    version: str = "v21.0"
    timeout: CallTimeout = 10.0              # seconds per provider call
    attempts: Attempts = 3                  # provider calls per send on 429 / 5xx / throttling


class WhatsAppChannel(Channel):
    type = "whatsapp"
    Settings = Settings
    secrets = ("access_token", "app_secret", "verify_token")
    dedup_ttl = 8 * 24 * 3600    # the provider redelivers for 7 days: a day more
    capabilities = Capabilities(
        text_length=MAX_TEXT, buttons=MAX_BUTTONS, button_title=MAX_BUTTON_TITLE,
        list_rows=MAX_ROWS, list_title=MAX_ROW_TITLE, cards=1, card_buttons=MAX_BUTTONS,
        media=True, templates=True, inline=0, window_hours=24, typing=False)
    refusal_status = 403
    settings: Settings

    # --- inbound -----------------------------------------------------------------------
    async def handshake(self, hook: Webhook):
        return hub_handshake(hook, self.settings.verify_token)

    def verify(self, hook: Webhook) -> bool:
        return sha256_signature_ok(hook.body, hook.headers.get("X-Hub-Signature-256", ""),
                                   self.settings.app_secret)

    def parse(self, hook: Webhook) -> list[InboundMessage]:
        try:
            env = wire.ENVELOPE.decode(hook.body)
        except msgspec.DecodeError as e:
            raise ParseError(f"not a WhatsApp webhook body: {e}") from e
        if env.object != "whatsapp_business_account":
            raise ParseError(f"unexpected object {env.object!r}")
        out: list[InboundMessage] = []
        for entry in env.entry:
            for change in entry.changes:
                v = change.value
                if change.field != "messages" or v is None:
                    continue                   # template status, quality updates...: not ours
                pnid = v.metadata.phone_number_id if v.metadata else ""
                if pnid and self.settings.phone_number_id and pnid != self.settings.phone_number_id:
                    continue                   # another number of the same app: not this instance
                names = {c.wa_id: c.profile.name for c in v.contacts if c.profile and c.profile.name}
                # `from` is the contact's wa_id; without it, the change's one contact is the sender
                only = v.contacts[0].wa_id if len(v.contacts) == 1 else ""
                for m in v.messages:
                    if not m.sender:
                        if not only:
                            continue           # nobody to answer or to file the message under
                        m.sender = only
                    msg = self._message(m, names)
                    if msg is not None:
                        out.append(msg)
                for s in v.statuses:
                    out.extend(self._status(s))
        return out

    def _message(self, m: wire.Message, names: dict[str, str]) -> InboundMessage | None:
        # An empty id would make every such message a duplicate of the first one.
        msg = InboundMessage(tenant=self.tenant, channel=self.instance_id,
                             native_id=m.id or f"{m.sender}:{m.timestamp}:{m.type}",
                             contact=m.sender, ts=_ts(m.timestamp))
        if m.sender in names:
            msg.profile = {"name": names[m.sender]}
        t = m.type
        if t == "text" and m.text is not None:
            msg.text = m.text.body
            mark = REF_MARK.search(msg.text) if "[ref:" in msg.text else None
            if mark:                           # came through a wa.me link of ours
                msg.referral = Referral(source="link", ref=mark.group(1))
                msg.text = REF_MARK.sub(" ", msg.text).strip()
                if not msg.text:
                    msg.kind = "referral"
        elif t == "interactive" and m.interactive is not None:
            r = m.interactive.button_reply or m.interactive.list_reply
            if r is None:
                return None                    # nfm_reply (flows) and others: not handled yet
            msg.kind, msg.payload, msg.text = "choice", r.id, r.title
        elif t == "button" and m.button is not None:   # quick reply of a template
            msg.kind, msg.payload, msg.text = "choice", m.button.payload, m.button.text
        elif t in ("image", "audio", "video", "document", "sticker"):
            o: wire.MediaObj | None = getattr(m, t)
            if o is None:
                return None
            kind = {"document": "file"}.get(t, t)
            msg.kind = "media"
            msg.media = [Media(kind=kind, id=o.id, url=o.url, mime=o.mime_type,  # type: ignore[arg-type]
                               caption=o.caption or o.filename)]
            msg.text = o.caption
        elif t == "location" and m.location is not None:
            loc = m.location
            msg.kind = "location"
            msg.location = Location(lat=loc.latitude, lon=loc.longitude,
                                    name=loc.name or loc.address)
        elif t == "request_welcome":           # the user opened the chat for the first time
            msg.kind = "open"
        else:
            return None                        # reactions, system notices, unsupported
        if m.referral is not None:             # click-to-WhatsApp ad or post
            r = m.referral
            msg.referral = Referral(source=r.source_type or "ad", ref=r.source_id, url=r.source_url)
            if msg.kind == "text" and not msg.text:
                msg.kind = "referral"
        return msg

    def _status(self, s: wire.Status) -> list[InboundMessage]:
        base = dict(tenant=self.tenant, channel=self.instance_id, contact=s.recipient_id,
                    ts=_ts(s.timestamp))
        # one id goes through sent, delivered, read: each status is its own event
        st = InboundMessage(native_id=f"{s.id}:{s.status}", kind="status", status=s.status,
                            refers_to=s.id, **base)
        out = [st]
        if s.errors:
            e = s.errors[0]
            st.payload, st.text = str(e.code), e.title or e.message
            if e.code in STOPPED and s.recipient_id:   # an opt-out of nobody is no turn
                out.append(InboundMessage(native_id=f"{s.id}:optout", kind="optout",
                                          text="whatsapp:131050", **base))
        return out

    # --- outbound ----------------------------------------------------------------------
    def render(self, reply: Reply) -> list[Any]:
        if reply.template is not None:
            return [self._template(reply)]
        text, choices = reply.text, reply.choices
        rich = [self._media(m) for m in reply.media] + [self._card(c) for c in reply.cards]
        out: list[dict[str, Any]] = []
        if text and (rich or not choices):
            # the text first, then what it is about; buttons come last, under a pointer
            out.extend({"type": "text", "text": {"preview_url": "https://" in part, "body": part}}
                       for part in split(text, MAX_TEXT))
            text = ""
        out.extend(rich)
        if choices:
            out.extend(self._choices(text, choices))
        return out or [{"type": "text", "text": {"preview_url": False, "body": "…"}}]

    def _choices(self, text: str, choices: list[Choice]) -> list[dict[str, Any]]:
        """3 reply buttons if the titles fit, else a list of up to 10 rows, else numbered text."""
        if len(choices) > MAX_ROWS:
            lines = [f"{i}. {c.title}" for i, c in enumerate(choices, 1)]
            body = "\n".join([text, *lines] if text else lines)
            return [{"type": "text", "text": {"preview_url": False, "body": p}}
                    for p in split(body, MAX_TEXT)]
        parts = split(text, MAX_BODY) if text else ["👇"]
        lead = [{"type": "text", "text": {"preview_url": False, "body": p}} for p in parts[:-1]]
        body = {"text": parts[-1]}
        if len(choices) <= MAX_BUTTONS and all(len(c.title) <= MAX_BUTTON_TITLE for c in choices):
            action = {"buttons": [{"type": "reply", "reply": {"id": c.id[:MAX_BUTTON_ID],
                                                              "title": c.title}}
                                  for c in choices]}
            return lead + [{"type": "interactive", "interactive": {
                "type": "button", "body": body, "action": action}}]
        rows = []
        for c in choices:
            row = {"id": c.id[:MAX_ROW_ID], "title": clip(c.title, MAX_ROW_TITLE)}
            desc = c.description
            if not desc and len(c.title) > MAX_ROW_TITLE:
                desc = "…" + c.title[MAX_ROW_TITLE - 1:]   # the title goes on underneath
            if desc:
                row["description"] = clip(desc, MAX_ROW_DESCRIPTION)
            rows.append(row)
        action = {"button": clip(self.settings.list_button, MAX_BUTTON_TITLE),
                  "sections": [{"title": clip(self.settings.list_button, MAX_ROW_TITLE),
                                "rows": rows}]}
        return lead + [{"type": "interactive", "interactive": {
            "type": "list", "body": body, "action": action}}]

    @staticmethod
    def _media(m: Media) -> dict[str, Any]:
        kind = {"file": "document"}.get(m.kind, m.kind)
        obj: dict[str, Any] = {"link": m.url} if m.url else {"id": m.id}
        if m.caption and kind in ("image", "video", "document"):
            obj["caption"] = clip(m.caption, MAX_BODY)
        return {"type": kind, kind: obj}

    def _card(self, card: Card) -> dict[str, Any]:
        """One card = one message: an image header, the texts, up to 3 reply buttons."""
        lines = [card.title, card.subtitle, card.url]
        body = clip("\n".join(x for x in lines if x), MAX_BODY)
        buttons = card.buttons[:MAX_BUTTONS]
        if not buttons:
            if card.image:
                return {"type": "image", "image": {"link": card.image, "caption": body}}
            return {"type": "text", "text": {"preview_url": bool(card.url), "body": body}}
        inter: dict[str, Any] = {"type": "button", "body": {"text": body}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": b.id[:MAX_BUTTON_ID],
                                        "title": clip(b.title, MAX_BUTTON_TITLE)}}
            for b in buttons]}}
        if card.image:
            inter["header"] = {"type": "image", "image": {"link": card.image}}
        return {"type": "interactive", "interactive": inter}

    @staticmethod
    def _template(reply: Reply) -> dict[str, Any]:
        t = reply.template
        assert t is not None
        tpl: dict[str, Any] = {"name": t.name, "language": {"code": t.language}}
        if t.params:
            tpl["components"] = [{"type": "body", "parameters": [
                {"type": "text", "text": p} for p in t.params]}]
        return {"type": "template", "template": tpl}

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        s = self.settings
        if not s.access_token:     # no call that can only come back 401
            return SendResult(status="failed", code="config", detail="access_token is not set")
        url = f"{s.api_base.rstrip('/')}/{s.version}/{s.phone_number_id}/messages"
        body = json.dumps({"messaging_product": "whatsapp", "recipient_type": "individual",
                           "to": contact, **payload}, ensure_ascii=False).encode()
        out = await provider.call(
            self.http, "POST", url, data=body, timeout=s.timeout, attempts=s.attempts,
            retryable=_retryable,
            headers={"Authorization": f"Bearer {s.access_token}",
                     "Content-Type": "application/json"})
        return self._result(out)

    def _result(self, out: provider.Outcome) -> SendResult:
        if 200 <= out.status < 300:
            try:
                ids = wire.SEND_ANSWER.decode(out.body).messages
            except msgspec.DecodeError:
                ids = []
            return SendResult(status="sent", provider_id=ids[0].id if ids else "")
        if out.status == 0:
            return SendResult(status="retry", retry_after=5.0, code=out.error,
                              detail=f"no answer after {out.attempts} attempts")
        err = _error(out.body)
        code, detail = err.code, _detail(err)
        if code in STOPPED:
            return SendResult(status="stopped", code=str(code), detail=detail)
        if code in WINDOW:
            return SendResult(status="failed", code=str(code),
                              detail="outside the 24 h window: send a template. " + detail)
        if out.retryable:
            wait = out.retry_after or (6.0 if code == 131056 else 30.0)
            return SendResult(status="retry", retry_after=wait, code=str(code or out.status),
                              detail=detail)
        if code in UNREACHABLE:
            return SendResult(status="failed", code=str(code), detail="undeliverable: " + detail)
        if code in AUTH or out.status in (401, 403):
            return SendResult(status="failed", code=str(code or out.status),
                              detail="check access_token and its permissions: " + detail)
        return SendResult(status="failed", code=str(code or out.status), detail=detail)

    # --- extras a flow step or a helpdesk can call ------------------------------------
    async def mark_read(self, message_id: str, typing: bool = False) -> SendResult:
        """Blue ticks on the contact's message (and a typing indicator for up to 25 s)."""
        s = self.settings
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read",
                                "message_id": message_id}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        out = await provider.call(
            self.http, "POST", f"{s.api_base.rstrip('/')}/{s.version}/{s.phone_number_id}/messages",
            data=json.dumps(body).encode(), timeout=s.timeout, attempts=1,
            headers={"Authorization": f"Bearer {s.access_token}", "Content-Type": "application/json"})
        return SendResult(status="sent") if 200 <= out.status < 300 else self._result(out)

    async def media_url(self, media_id: str) -> str:
        """The short-lived download URL of an inbound media id ("" when Meta refuses); the
        download itself needs the same Bearer token."""
        s = self.settings
        out = await provider.call(
            self.http, "GET", f"{s.api_base.rstrip('/')}/{s.version}/{media_id}",
            timeout=s.timeout, attempts=s.attempts, retryable=_retryable,
            headers={"Authorization": f"Bearer {s.access_token}"})
        if not 200 <= out.status < 300:
            return ""
        try:
            return str(json.loads(out.body).get("url", ""))
        except ValueError:
            return ""

    def contact_link(self, ref: str = "") -> str:
        phone = re.sub(r"\D", "", self.settings.display_phone)
        if not phone:
            return ""
        text = self.settings.link_text
        if ref:
            if not REF_MARK.fullmatch(f"[ref:{ref}]"):
                # The mark would stay in the text and the flow would never start from it.
                raise ValueError(f"ref {ref[:80]!r}: a wa.me link carries 1-64 of A-Z a-z 0-9 _ . -")
            text = f"{text} [ref:{ref}]".strip()
        return f"https://wa.me/{phone}" + (f"?text={quote(text)}" if text else "")


def _error(body: bytes) -> wire.GraphError:
    try:
        return wire.ERROR.decode(body).error
    except msgspec.DecodeError:
        return wire.GraphError()


def _detail(err: wire.GraphError) -> str:
    details = err.error_data.get("details", "") if isinstance(err.error_data, dict) else ""
    return " ".join(x for x in (err.message, str(details or "")) if x)[:300]


def _retryable(status: int, body: bytes) -> bool:
    if status == 0 or status in provider.RETRY_STATUSES or status >= 500:
        return _error(body).code not in (WINDOW | STOPPED | UNREACHABLE)
    return _error(body).code in (THROTTLED | TRANSIENT)
