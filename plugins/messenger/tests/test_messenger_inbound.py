"""Messenger inbound, as a table: label, webhook events, headers -> normalized messages."""
from __future__ import annotations

import json

import pytest
from causette_messenger.channel import MessengerChannel, Settings

from gateway.channels import ParseError
from gateway.channels import sha256_signature as signature
from gateway.conformance import make_webhook
from gateway.types import InboundMessage, Location, Media, Referral

SECRET = "fb-app-secret-for-tests"
PAGE = "104293835684410"
PSID = "6789012345678901"
TS = 1717430400123


def channel(**kw) -> MessengerChannel:
    s = dict(page_id=PAGE, page_access_token="EAAB-page-token", app_secret=SECRET,
             verify_token="my-verify-token", page_username="maisonlumiere")
    s.update(kw)
    return MessengerChannel("demo", "fb", Settings(**s))


def envelope(*events, page=PAGE, obj="page", standby=()) -> bytes:
    entry = {"id": page, "time": TS + 377, "messaging": [
        {"sender": {"id": PSID}, "recipient": {"id": page}, "timestamp": TS, **e} for e in events]}
    if standby:
        entry["standby"] = [{"sender": {"id": PSID}, "recipient": {"id": page}, "timestamp": TS, **e}
                            for e in standby]
    return json.dumps({"object": obj, "entry": [entry]}).encode()


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": signature(secret, body)}


def M(**kw) -> InboundMessage:
    base = dict(tenant="demo", channel="fb", contact=PSID, ts=TS / 1000)
    base.update(kw)
    return InboundMessage(**base)


INBOUND = [
    ("text", envelope({"message": {"mid": "m_1", "text": "Bonjour"}}), [M(native_id="m_1", text="Bonjour")]),
    ("quick reply tap: choice with its payload",
     envelope({"message": {"mid": "m_2", "text": "Red", "quick_reply": {"payload": "PICK_RED"}}}),
     [M(native_id="m_2", kind="choice", payload="PICK_RED", text="Red")]),
    ("postback (template button, menu)",
     envelope({"postback": {"mid": "m_3", "title": "Buy", "payload": "BUY_HAT_1"}}),
     [M(native_id="m_3", kind="postback", payload="BUY_HAT_1", text="Buy")]),
    ("Get Started through an m.me?ref= link: postback with the referral",
     envelope({"postback": {"mid": "m_4", "title": "Get Started", "payload": "GET_STARTED",
                            "referral": {"ref": "sms-jan", "source": "SHORTLINK", "type": "OPEN_THREAD"}}}),
     [M(native_id="m_4", kind="postback", payload="GET_STARTED", text="Get Started",
        referral=Referral(source="link", ref="sms-jan"))]),
    ("m.me?ref= on an existing thread: a referral event",
     envelope({"referral": {"ref": "qr-store-12", "source": "SHORTLINK", "type": "OPEN_THREAD"}}),
     [M(native_id=f"referral:{PSID}:{TS}", kind="referral", referral=Referral(source="link", ref="qr-store-12"))]),
    ("click-to-Messenger ad: the ad id when there is no ref",
     envelope({"referral": {"source": "ADS", "type": "OPEN_THREAD", "ad_id": "6045246247433",
                            "ads_context_data": {"ad_title": "Soldes"}}}),
     [M(native_id=f"referral:{PSID}:{TS}", kind="referral", referral=Referral(source="ad", ref="6045246247433"))]),
    ("chat plugin on the brand's site, with the page it was opened on",
     envelope({"referral": {"ref": "home", "source": "CUSTOMER_CHAT_PLUGIN", "type": "OPEN_THREAD",
                            "referer_uri": "https://shop.example.com/"}}),
     [M(native_id=f"referral:{PSID}:{TS}", kind="referral",
        referral=Referral(source="widget", ref="home", url="https://shop.example.com/"))]),
    ("a message that came from an ad carries the referral",
     envelope({"message": {"mid": "m_5", "text": "C'est dispo ?",
                           "referral": {"source": "ADS", "type": "OPEN_THREAD", "ad_id": "77"}}}),
     [M(native_id="m_5", text="C'est dispo ?", referral=Referral(source="ad", ref="77"))]),
    ("echo of our own send is ignored",
     envelope({"message": {"mid": "m_6", "is_echo": True, "app_id": 1517776481860111, "text": "Merci !"}}),
     []),
    ("image attachments",
     envelope({"message": {"mid": "m_7", "attachments": [
         {"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/a.jpg"}},
         {"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/b.jpg"}}]}}),
     [M(native_id="m_7", kind="media", media=[Media(kind="image", url="https://scontent.xx.fbcdn.net/a.jpg"),
                                              Media(kind="image", url="https://scontent.xx.fbcdn.net/b.jpg")])]),
    ("file and audio",
     envelope({"message": {"mid": "m_8", "attachments": [
         {"type": "file", "payload": {"url": "https://cdn.fb/f.pdf"}},
         {"type": "audio", "payload": {"url": "https://cdn.fb/v.mp4"}}]}}),
     [M(native_id="m_8", kind="media", media=[Media(kind="file", url="https://cdn.fb/f.pdf"),
                                              Media(kind="audio", url="https://cdn.fb/v.mp4")])]),
    ("the Like button is a thumbs-up text",
     envelope({"message": {"mid": "m_9", "sticker_id": 369239263222822, "attachments": [
         {"type": "image", "payload": {"url": "https://cdn.fb/like.png", "sticker_id": 369239263222822}}]}}),
     [M(native_id="m_9", text="👍")]),
    ("another sticker is a sticker",
     envelope({"message": {"mid": "m_10", "attachments": [
         {"type": "image", "payload": {"url": "https://cdn.fb/s.png", "sticker_id": 12345}}]}}),
     [M(native_id="m_10", kind="media", media=[Media(kind="sticker", url="https://cdn.fb/s.png", id="12345")])]),
    ("location (legacy attachment)",
     envelope({"message": {"mid": "m_11", "attachments": [
         {"type": "location", "title": "Pin", "payload": {"coordinates": {"lat": 45.76, "long": 4.83}}}]}}),
     [M(native_id="m_11", kind="location", location=Location(lat=45.76, lon=4.83, name="Pin"))]),
    ("a shared link (fallback attachment) becomes text",
     envelope({"message": {"mid": "m_12", "text": "regarde", "attachments": [
         {"type": "fallback", "payload": {"url": "https://shop.example.com/p/1", "title": "Bonnet"}}]}}),
     [M(native_id="m_12", text="regarde https://shop.example.com/p/1")]),
    ("delivery receipt: one status per mid",
     envelope({"delivery": {"mids": ["m_out1", "m_out2"], "watermark": 1717430400000}}),
     [M(native_id="m_out1:delivered", kind="status", status="delivered", refers_to="m_out1"),
      M(native_id="m_out2:delivered", kind="status", status="delivered", refers_to="m_out2")]),
    ("read receipt: a watermark",
     envelope({"read": {"watermark": 1717430400999}}),
     [M(native_id=f"read:{PSID}:1717430400999", kind="status", status="read", payload="1717430400999")]),
    ("marketing messages stopped: an opt-out",
     envelope({"optin": {"type": "notification_messages", "payload": "promo",
                         "notification_messages_status": "STOP_NOTIFICATIONS"}}),
     [M(native_id=f"optout:{PSID}:{TS}", kind="optout", text="messenger:notification_messages", payload="promo")]),
    ("marketing messages opt-in",
     envelope({"optin": {"type": "notification_messages", "payload": "promo",
                         "notification_messages_token": "tok", "notification_messages_status": "RESUME_NOTIFICATIONS"}}),
     [M(native_id=f"optin:{PSID}:{TS}", kind="optin", text="messenger:notification_messages", payload="promo")]),
    ("handover: the inbox passed the thread back to us",
     envelope({"pass_thread_control": {"new_owner_app_id": "1517776481860111", "previous_owner_app_id": "263902037430900",
                                       "metadata": "resolved"}}),
     [M(native_id=f"pass_thread_control:{PSID}:{TS}", kind="status", status="pass_thread_control",
        payload="1517776481860111", text="resolved")]),
    ("standby events (the inbox owns the thread) are not ours to answer",
     envelope(standby=[{"message": {"mid": "m_sb", "text": "agent, please"}}]), []),
    ("another Page of the same app is not this instance's",
     envelope({"message": {"mid": "m_13", "text": "x"}}, page="999"), []),
    ("object instagram with the Page's id parses like a Page's",
     envelope({"message": {"mid": "ig_1", "text": "hello"}}, obj="instagram"), [M(native_id="ig_1", text="hello")]),
    ("a real Instagram webhook names the IG account, not the Page: dropped (Instagram not supported yet)",
     envelope({"message": {"mid": "ig_2", "text": "hello"}}, obj="instagram", page="17841400000000001"), []),
    ("a batch keeps its order",
     envelope({"message": {"mid": "m_a", "text": "un"}}, {"message": {"mid": "m_b", "text": "deux"}}),
     [M(native_id="m_a", text="un"), M(native_id="m_b", text="deux")]),
]


@pytest.mark.parametrize("label,body,expected", INBOUND, ids=[c[0] for c in INBOUND])
def test_inbound(label, body, expected):
    ch = channel()
    hook = make_webhook(body=body, headers=signed(body))
    assert ch.verify(hook) is True
    assert ch.parse(hook) == expected


def test_chat_plugin_visitor_without_psid_is_addressed_by_user_ref():
    body = json.dumps({"object": "page", "entry": [{"id": PAGE, "time": TS, "messaging": [
        {"sender": {"user_ref": "ur-42"}, "recipient": {"id": PAGE}, "timestamp": TS,
         "message": {"mid": "m_ur", "text": "salut"}}]}]}).encode()
    [m] = channel().parse(make_webhook(body=body, headers=signed(body)))
    assert m.contact == "ref:ur-42"
    assert MessengerChannel.recipient(m.contact) == {"user_ref": "ur-42"}


SIGNATURES = [
    ("right signature", lambda b: {"X-Hub-Signature-256": signature(SECRET, b)}, True),
    ("lower-case header", lambda b: {"x-hub-signature-256": signature(SECRET, b)}, True),
    ("missing", lambda b: {}, False),
    ("wrong secret", lambda b: {"X-Hub-Signature-256": signature("nope", b)}, False),
    ("signature of other bytes", lambda b: {"X-Hub-Signature-256": signature(SECRET, b[:-1])}, False),
    ("upper-case hex", lambda b: {"X-Hub-Signature-256": signature(SECRET, b).upper()}, False),
    ("legacy sha1 only", lambda b: {"X-Hub-Signature": "sha1=" + "0" * 40}, False),
]


@pytest.mark.parametrize("label,headers,ok", SIGNATURES, ids=[c[0] for c in SIGNATURES])
def test_signature(label, headers, ok):
    body = envelope({"message": {"mid": "m_1", "text": "hi"}})
    assert channel().verify(make_webhook(body=body, headers=headers(body))) is ok


def test_reference_vector_from_our_own_input():
    # channels.md §2.2's constructed example, rebuilt here from its fields
    body = json.dumps({"object": "page", "entry": [{"id": PAGE, "time": 1700000000500, "messaging": [{
        "sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1700000000123,
        "message": {"mid": "m_AbC123", "text": "hi"}}]}]}, separators=(",", ":")).encode()
    expected = "sha256=577f983d89f9f3db0e5de0122c49a763f00a8332aaa6a30690c8c6996b761ee6"
    assert signature("app_secret_example", body) == expected
    ch = channel(app_secret="app_secret_example")
    hook = make_webhook(body=body, headers={"X-Hub-Signature-256": expected})
    assert ch.verify(hook) is True
    assert ch.parse(hook) == [InboundMessage(tenant="demo", channel="fb", native_id="m_AbC123",
                                             contact=PSID, ts=1700000000.123, text="hi")]


@pytest.mark.parametrize("body", [b"", b"{", b"[1]", b'{"object": "whatsapp_business_account"}',
                                  b'{"object": "page", "entry": [{"messaging": "x"}]}'])
def test_malformed_bodies_are_parse_errors(body):
    with pytest.raises(ParseError):
        channel().parse(make_webhook(body=body, headers=signed(body)))


@pytest.mark.parametrize("query,status", [
    ("?hub.mode=subscribe&hub.challenge=CHALLENGE_ACCEPTED&hub.verify_token=my-verify-token", 200),
    ("?hub.mode=subscribe&hub.challenge=x&hub.verify_token=my-verify-tokeN", 403),
    ("?hub.challenge=x&hub.verify_token=my-verify-token", 403),
])
async def test_handshake(query, status):
    resp = await channel().handshake(make_webhook("GET", "https://gw.example/t/demo/channels/fb" + query))
    assert resp.status == status
    if status == 200:
        assert resp.text == "CHALLENGE_ACCEPTED"


@pytest.mark.parametrize("kw,ref,link", [
    ({}, "sms-jan", "https://m.me/maisonlumiere?ref=sms-jan"),
    ({}, "", "https://m.me/maisonlumiere"),
    ({"page_username": ""}, "a b", f"https://m.me/{PAGE}?ref=a%20b"),
])
def test_contact_link(kw, ref, link):
    assert channel(**kw).contact_link(ref) == link
