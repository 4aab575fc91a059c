"""WhatsApp inbound, as a table: label, webhook value, headers -> normalized messages.

Bodies are built here and signed with the scheme (HMAC-SHA256 of the raw bytes), then handed
to the channel exactly as the gateway does (raw bytes, case-insensitive headers).
"""
from __future__ import annotations

import json

import pytest
from causette_whatsapp.channel import Settings, WhatsAppChannel

from gateway.channels import ParseError
from gateway.channels import sha256_signature as signature
from gateway.conformance import make_webhook
from gateway.types import InboundMessage, Location, Media, Referral

SECRET = "wa-app-secret-for-tests"
PNID = "106540352242922"
ANA = "5511987654321"


def channel(**kw) -> WhatsAppChannel:
    s = dict(phone_number_id=PNID, access_token="EAAG-token", app_secret=SECRET,
             verify_token="my-verify-token", display_phone="+1 555 078 3881")
    s.update(kw)
    return WhatsAppChannel("demo", "wa", Settings(**s))


def envelope(messages=(), statuses=(), contacts=None, pnid=PNID, field="messages") -> bytes:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid}}
    if messages:
        value["contacts"] = contacts if contacts is not None else \
            [{"profile": {"name": "Ana Souza"}, "wa_id": ANA}]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": "102290129340398", "changes": [{"field": field, "value": value}]}]}).encode()


def msg(type_: str, id_: str = "wamid.A1", **content) -> dict:
    return {"from": ANA, "id": id_, "timestamp": "1717430400", "type": type_, **content}


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": signature(secret, body)}


def M(**kw) -> InboundMessage:
    base = dict(tenant="demo", channel="wa", contact=ANA, ts=1717430400.0,
                profile={"name": "Ana Souza"})
    base.update(kw)
    return InboundMessage(**base)


INBOUND = [
    ("text", envelope([msg("text", text={"body": "Hi, where is my order?"})]),
     [M(native_id="wamid.A1", text="Hi, where is my order?")]),
    ("reply button click",
     envelope([msg("interactive", context={"from": "15550783881", "id": "wamid.OUT"},
                   interactive={"type": "button_reply",
                                "button_reply": {"id": "track_order", "title": "Track order"}})]),
     [M(native_id="wamid.A1", kind="choice", payload="track_order", text="Track order")]),
    ("list row pick",
     envelope([msg("interactive", interactive={"type": "list_reply", "list_reply": {
         "id": "priority_express", "title": "Priority Express", "description": "1-2 days"}})]),
     [M(native_id="wamid.A1", kind="choice", payload="priority_express", text="Priority Express")]),
    ("template quick-reply button",
     envelope([msg("button", button={"payload": "confirm_appt_8812", "text": "Confirm"})]),
     [M(native_id="wamid.A1", kind="choice", payload="confirm_appt_8812", text="Confirm")]),
    ("image with caption",
     envelope([msg("image", image={"id": "1479537139650973", "mime_type": "image/jpeg",
                                   "sha256": "abc", "caption": "ma commande"})]),
     [M(native_id="wamid.A1", kind="media", text="ma commande",
        media=[Media(kind="image", id="1479537139650973", mime="image/jpeg", caption="ma commande")])]),
    ("voice note",
     envelope([msg("audio", audio={"id": "55", "mime_type": "audio/ogg; codecs=opus", "voice": True})]),
     [M(native_id="wamid.A1", kind="media", media=[Media(kind="audio", id="55", mime="audio/ogg; codecs=opus")])]),
    ("document keeps its file name",
     envelope([msg("document", document={"id": "77", "mime_type": "application/pdf",
                                         "filename": "facture.pdf"})]),
     [M(native_id="wamid.A1", kind="media",
        media=[Media(kind="file", id="77", mime="application/pdf", caption="facture.pdf")])]),
    ("sticker",
     envelope([msg("sticker", sticker={"id": "88", "mime_type": "image/webp", "animated": False})]),
     [M(native_id="wamid.A1", kind="media", media=[Media(kind="sticker", id="88", mime="image/webp")])]),
    ("location",
     envelope([msg("location", location={"latitude": 48.8566, "longitude": 2.3522,
                                         "name": "Boutique Rivoli", "address": "Paris"})]),
     [M(native_id="wamid.A1", kind="location", location=Location(lat=48.8566, lon=2.3522, name="Boutique Rivoli"))]),
    ("click-to-WhatsApp ad: referral with the first text",
     envelope([msg("text", text={"body": "Je veux la promo"}, referral={
         "source_url": "https://fb.me/3cr4Wqqkp", "source_id": "120213456789", "source_type": "ad",
         "headline": "Soldes d'hiver", "body": "-50%", "media_type": "image",
         "image_url": "https://cdn/x.jpg", "ctwa_clid": "ARAkLkA8rmlF"})]),
     [M(native_id="wamid.A1", text="Je veux la promo",
        referral=Referral(source="ad", ref="120213456789", url="https://fb.me/3cr4Wqqkp"))]),
    ("wa.me link with a prefilled ref: the mark is stripped",
     envelope([msg("text", text={"body": "Bonjour ! [ref:sms-jan]"})]),
     [M(native_id="wamid.A1", text="Bonjour !", referral=Referral(source="link", ref="sms-jan"))]),
    ("wa.me link whose text was erased but the ref: a bare referral",
     envelope([msg("text", text={"body": "[ref:qr-shop-12]"})]),
     [M(native_id="wamid.A1", kind="referral", referral=Referral(source="link", ref="qr-shop-12"))]),
    ("first opening of the chat (request_welcome)",
     envelope([msg("request_welcome")]),
     [M(native_id="wamid.A1", kind="open")]),
    ("reaction and unsupported types are ignored",
     envelope([msg("reaction", reaction={"message_id": "wamid.OUT", "emoji": "👍"}),
               msg("unsupported", "wamid.A2", errors=[{"code": 131051}])]),
     []),
    ("batch: two messages, second sender without a profile",
     envelope([msg("text", text={"body": "un"}),
               {"from": "447700900123", "id": "wamid.B2", "timestamp": "1717430401",
                "type": "text", "text": {"body": "deux"}}]),
     [M(native_id="wamid.A1", text="un"),
      InboundMessage(tenant="demo", channel="wa", contact="447700900123", native_id="wamid.B2",
                     ts=1717430401.0, text="deux")]),
    ("statuses: sent, delivered, read; each its own event",
     envelope(statuses=[{"id": "wamid.OUT", "status": s, "timestamp": "1717430600",
                         "recipient_id": ANA} for s in ("sent", "delivered", "read")]),
     [InboundMessage(tenant="demo", channel="wa", contact=ANA, ts=1717430600.0, kind="status",
                     native_id=f"wamid.OUT:{s}", status=s, refers_to="wamid.OUT")
      for s in ("sent", "delivered", "read")]),
    ("status failed: re-engagement (131047) keeps the code",
     envelope(statuses=[{"id": "wamid.OUT", "status": "failed", "timestamp": "1717430600",
                         "recipient_id": ANA,
                         "errors": [{"code": 131047, "title": "Re-engagement message"}]}]),
     [InboundMessage(tenant="demo", channel="wa", contact=ANA, ts=1717430600.0, kind="status",
                     native_id="wamid.OUT:failed", status="failed", refers_to="wamid.OUT",
                     payload="131047", text="Re-engagement message")]),
    ("status failed 131050: the user stopped marketing messages -> an opt-out",
     envelope(statuses=[{"id": "wamid.OUT", "status": "failed", "timestamp": "1717430600",
                         "recipient_id": ANA, "errors": [{"code": 131050, "title": "User stopped"}]}]),
     [InboundMessage(tenant="demo", channel="wa", contact=ANA, ts=1717430600.0, kind="status",
                     native_id="wamid.OUT:failed", status="failed", refers_to="wamid.OUT",
                     payload="131050", text="User stopped"),
      InboundMessage(tenant="demo", channel="wa", contact=ANA, ts=1717430600.0, kind="optout",
                     native_id="wamid.OUT:optout", text="whatsapp:131050")]),
    ("another phone number of the same app is not this instance's",
     envelope([msg("text", text={"body": "hello"})], pnid="999999999"), []),
    ("other webhook fields (template status updates) are ignored",
     envelope([msg("text", text={"body": "x"})], field="message_template_status_update"), []),
]


@pytest.mark.parametrize("label,body,expected", INBOUND, ids=[c[0] for c in INBOUND])
def test_inbound(label, body, expected):
    ch = channel()
    hook = make_webhook(body=body, headers=signed(body))
    assert ch.verify(hook) is True
    assert ch.parse(hook) == expected


SIGNATURES = [
    ("right signature", lambda b: {"X-Hub-Signature-256": signature(SECRET, b)}, True),
    ("header name in any case", lambda b: {"x-hub-signature-256": signature(SECRET, b)}, True),
    ("missing", lambda b: {}, False),
    ("wrong secret", lambda b: {"X-Hub-Signature-256": signature("other", b)}, False),
    ("signature of other bytes", lambda b: {"X-Hub-Signature-256": signature(SECRET, b + b" ")}, False),
    ("bare hex without sha256=", lambda b: {"X-Hub-Signature-256": signature(SECRET, b)[7:]}, False),
    ("legacy sha1 header only", lambda b: {"X-Hub-Signature": "sha1=" + "0" * 40}, False),
    ("empty", lambda b: {"X-Hub-Signature-256": ""}, False),
]


@pytest.mark.parametrize("label,headers,ok", SIGNATURES, ids=[c[0] for c in SIGNATURES])
def test_signature(label, headers, ok):
    body = envelope([msg("text", text={"body": "hi"})])
    assert channel().verify(make_webhook(body=body, headers=headers(body))) is ok


def test_no_app_secret_refuses_everything():
    body = envelope([msg("text", text={"body": "hi"})])
    assert channel(app_secret="").verify(make_webhook(body=body, headers=signed(body, ""))) is False


def test_reference_vector_from_our_own_input():
    # The reference's Meta vector (pywa test_server.py), rebuilt here from its fields.
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": "264937493375603", "changes": [{"value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550953877", "phone_number_id": "277321005464405"},
            "contacts": [{"profile": {"name": "PyWa Tests"}, "wa_id": "972544401243"}],
            "messages": [{"from": "972544401243",
                          "id": "wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA",
                          "timestamp": "1730231903", "text": {"body": "Hey there! I am using PyWa."},
                          "type": "text"}]}, "field": "messages"}]}]}, separators=(",", ":")).encode()
    expected = "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441"
    assert signature("1222e786b144d0e85b9f365372d93676", body) == expected
    ch = channel(app_secret="1222e786b144d0e85b9f365372d93676", phone_number_id="277321005464405")
    hook = make_webhook(body=body, headers={"X-Hub-Signature-256": expected})
    assert ch.verify(hook) is True
    [m] = ch.parse(hook)
    assert (m.contact, m.text, m.profile) == ("972544401243", "Hey there! I am using PyWa.",
                                              {"name": "PyWa Tests"})


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"object": "page", "entry": []}',
                                  b'{"object": "whatsapp_business_account", "entry": 3}'])
def test_malformed_bodies_are_parse_errors(body):
    with pytest.raises(ParseError):
        channel().parse(make_webhook(body=body, headers=signed(body)))


HANDSHAKES = [
    ("right token", "?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=my-verify-token",
     200, "1158201444"),
    ("wrong token", "?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=nope", 403, None),
    ("no token", "?hub.mode=subscribe&hub.challenge=1158201444", 403, None),
    ("wrong mode", "?hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=my-verify-token", 403, None),
]


@pytest.mark.parametrize("label,query,status,text", HANDSHAKES, ids=[h[0] for h in HANDSHAKES])
async def test_handshake(label, query, status, text):
    hook = make_webhook("GET", "https://gw.example/t/demo/channels/wa" + query)
    resp = await channel().handshake(hook)
    assert resp.status == status
    if text is not None:
        assert resp.text == text and resp.content_type == "text/plain"


async def test_handshake_refused_without_a_configured_token():
    hook = make_webhook("GET", "https://gw.example/t/demo/channels/wa?hub.mode=subscribe"
                        "&hub.challenge=1&hub.verify_token=")
    assert (await channel(verify_token="").handshake(hook)).status == 403


@pytest.mark.parametrize("ref,link", [
    ("", "https://wa.me/15550783881?text=Bonjour%20%21"),
    ("sms-jan", "https://wa.me/15550783881?text=Bonjour%20%21%20%5Bref%3Asms-jan%5D"),
])
def test_contact_link_round_trips_the_ref(ref, link):
    ch = channel()
    assert ch.contact_link(ref) == link
    if ref:   # what the user sends from that link parses back to the ref
        from urllib.parse import unquote
        body = envelope([msg("text", text={"body": unquote(link.split("text=")[1])})])
        [m] = ch.parse(make_webhook(body=body, headers=signed(body)))
        assert m.referral == Referral(source="link", ref=ref) and m.text == "Bonjour !"


@pytest.mark.parametrize("ref", ["soldes hiver", "été-2027", "a/b", "x" * 65])
def test_contact_link_refuses_a_ref_that_would_not_come_back(ref):
    with pytest.raises(ValueError, match="wa.me link carries"):
        channel().contact_link(ref)


def test_no_link_without_a_display_phone():
    assert channel(display_phone="").contact_link("x") == ""
