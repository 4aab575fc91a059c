"""WeChat inbound, as tables: label, XML -> normalized messages, in plain and safe mode;
the GET handshake; signatures that must be refused; passive replies."""
from __future__ import annotations

import base64
import hashlib
import re
import time
import xml.etree.ElementTree as ET

import pytest
from causette_wechat import WeChatChannel
from causette_wechat.channel import Settings
from causette_wechat.crypto import MessageCrypto, signature

from gateway.channels import ParseError, Webhook
from gateway.types import InboundMessage, Location, Media, Referral

TOKEN = "demo-token"
APPID = "wx1234567890abcdef"
AESKEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")   # 43 chars
OA = "gh_3a8f2c1d9e0b"
USER = "oR5Gjjl_eiZoUpGozMo7dbBJ362A"
URL = "https://gw.example.com/t/demo/channels/wechat-main"
TS, NONCE = str(int(time.time())), "271828"


def channel(**kw) -> WeChatChannel:
    s = dict(token=TOKEN, app_id=APPID, encoding_aes_key=AESKEY, mode="compat")
    s.update(kw)
    return WeChatChannel("demo", "wechat-main", Settings(**s))


def xml(**fields) -> bytes:
    base = {"ToUserName": OA, "FromUserName": USER, "CreateTime": "1795683600"}
    base.update(fields)
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" if not str(v).isdigit() else f"<{k}>{v}</{k}>"
                    for k, v in base.items())
    return f"<xml>{inner}</xml>".encode()


def query(**extra) -> dict[str, str]:
    q = {"signature": signature(TOKEN, TS, NONCE), "timestamp": TS, "nonce": NONCE, "openid": USER}
    q.update(extra)
    return q


def plain(body: bytes, **q) -> Webhook:
    return Webhook("POST", URL, query(**q), {"Content-Type": "text/xml"}, body)


def safe(body: bytes, random16: bytes = b"0123456789abcdef") -> Webhook:
    c = MessageCrypto(TOKEN, AESKEY, APPID)
    enc = c.encrypt(body, random16)
    outer = f"<xml><ToUserName><![CDATA[{OA}]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
    return Webhook("POST", URL, query(encrypt_type="aes",
                                      msg_signature=signature(TOKEN, TS, NONCE, enc)),
                   {"Content-Type": "text/xml"}, outer.encode())


T = 1795683600.0
COMMON = dict(tenant="demo", channel="wechat-main", contact=USER, ts=T)

INBOUND = [
    ("text", xml(MsgType="text", Content="查订单", MsgId="24601234567890123"),
     [InboundMessage(native_id="24601234567890123", kind="text", text="查订单", **COMMON)]),
    ("msgmenu tap", xml(MsgType="text", Content="满意", MsgId="2460999", bizmsgmenuid="101"),
     [InboundMessage(native_id="2460999", kind="choice", text="满意", payload="101", **COMMON)]),
    ("image", xml(MsgType="image", PicUrl="http://mmbiz/p.jpg", MediaId="media_1", MsgId="7"),
     [InboundMessage(native_id="7", kind="media", **COMMON,
                     media=[Media(kind="image", url="http://mmbiz/p.jpg", id="media_1")])]),
    ("voice with recognition", xml(MsgType="voice", MediaId="v1", Format="amr", Recognition="你好",
                                   MsgId="8"),
     [InboundMessage(native_id="8", kind="media", text="你好", **COMMON,
                     media=[Media(kind="audio", id="v1", mime="audio/amr")])]),
    ("location", xml(MsgType="location", Location_X="31.2304", Location_Y="121.4737", Scale="15",
                     Label="上海市", MsgId="9"),
     [InboundMessage(native_id="9", kind="location", **COMMON,
                     location=Location(lat=31.2304, lon=121.4737, name="上海市"))]),
    ("subscribe", xml(MsgType="event", Event="subscribe"),
     [InboundMessage(native_id=f"{USER}:1795683600:subscribe:", kind="optin", **COMMON)]),
    ("subscribe by scanning a parametric QR code",
     xml(MsgType="event", Event="subscribe", EventKey="qrscene_winter-sale", Ticket="TICKET"),
     [InboundMessage(native_id=f"{USER}:1795683600:subscribe:qrscene_winter-sale", kind="optin",
                     referral=Referral(source="qr", ref="winter-sale"), **COMMON)]),
    ("SCAN by a follower", xml(MsgType="event", Event="SCAN", EventKey="winter-sale", Ticket="T"),
     [InboundMessage(native_id=f"{USER}:1795683600:SCAN:winter-sale", kind="referral",
                     referral=Referral(source="qr", ref="winter-sale"), **COMMON)]),
    ("unsubscribe", xml(MsgType="event", Event="unsubscribe"),
     [InboundMessage(native_id=f"{USER}:1795683600:unsubscribe:", kind="optout", **COMMON)]),
    ("menu CLICK", xml(MsgType="event", Event="CLICK", EventKey="TRACK_ORDER"),
     [InboundMessage(native_id=f"{USER}:1795683600:CLICK:TRACK_ORDER", kind="postback",
                     payload="TRACK_ORDER", **COMMON)]),
    ("template delivery report", xml(MsgType="event", Event="TEMPLATESENDJOBFINISH",
                                     MsgID="200228332", Status="success"),
     [InboundMessage(native_id="tpl:200228332", kind="status", status="delivered",
                     refers_to="200228332", **COMMON)]),
    ("template refused by the user", xml(MsgType="event", Event="TEMPLATESENDJOBFINISH",
                                         MsgID="200228333", Status="failed:user block"),
     [InboundMessage(native_id="tpl:200228333", kind="status", status="failed",
                     refers_to="200228333", **COMMON)]),
    ("menu VIEW (a link) is ignored", xml(MsgType="event", Event="VIEW", EventKey="https://x"), []),
    ("location report is ignored", xml(MsgType="event", Event="LOCATION", Latitude="1",
                                       Longitude="2", Precision="3"), []),
]


@pytest.mark.parametrize("mode", ["plain", "safe"])
@pytest.mark.parametrize("label,body,expected", INBOUND, ids=[c[0] for c in INBOUND])
def test_wechat_inbound_table(label, body, expected, mode):
    ch = channel()
    h = plain(body) if mode == "plain" else safe(body)
    assert ch.verify(h)
    assert ch.parse(h) == expected


def test_wechat_reference_vectors():
    """Section 5.2 of the reference, rebuilt from its inputs."""
    assert signature("test", "1410685589", "test") == "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
    c = MessageCrypto("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
    plain_xml = (b"<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n"
                 b"<FromUserName><![CDATA[messense]]></FromUserName>\n"
                 b"<CreateTime>1411525903</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n"
                 b"<Content><![CDATA[test]]></Content>\n<MsgId>4363689963896700987</MsgId>\n"
                 b"<AgentID>1</AgentID>\n</xml>")
    enc = c.encrypt(plain_xml, b"ec90b1530358d4d3")
    assert enc.startswith("RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxps")
    assert enc.endswith("e8K9QaNWHp91eBdCRxthuL0=")
    assert signature("123456", "1411525903", "461056294", enc) == \
        "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
    assert c.decrypt(enc) == plain_xml
    reply_xml = (b"<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
                 b"<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n"
                 b"<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n"
                 b"<CreateTime>1411525903</CreateTime>\n</xml>")
    env = c.envelope(reply_xml, "1411525903", "461056294", b"1234567890123456")
    assert "<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]>" in env


async def test_wechat_get_handshake():
    ch = channel()
    ok = Webhook("GET", URL, query(echostr="5978123456"), {}, b"")
    r = await ch.handshake(ok)
    assert r.status == 200 and r.text == "5978123456"
    bad = Webhook("GET", URL, dict(query(echostr="1"), signature="0" * 40), {}, b"")
    assert (await ch.handshake(bad)).status == 403
    missing = Webhook("GET", URL, {"echostr": "1"}, {}, b"")
    assert (await ch.handshake(missing)).status == 403


def _other_appid(body: bytes) -> Webhook:
    c = MessageCrypto(TOKEN, AESKEY, "wxANOTHERAPP00000")
    enc = c.encrypt(body)
    outer = f"<xml><Encrypt><![CDATA[{enc}]]></Encrypt></xml>".encode()
    return Webhook("POST", URL, query(encrypt_type="aes",
                                      msg_signature=signature(TOKEN, TS, NONCE, enc)), {}, outer)


def _tampered(body: bytes) -> Webhook:
    h = safe(body)
    enc = re.search(rb"CDATA\[([^\]]+)\]\]></Encrypt>", h.body).group(1).decode()
    flipped = base64.b64encode(bytes([base64.b64decode(enc)[0] ^ 1]) + base64.b64decode(enc)[1:]).decode()
    return Webhook("POST", URL, h.query, {}, h.body.replace(enc.encode(), flipped.encode()))


REFUSED = [
    # label, the account's mode, webhook; compat mode accepts both forms, so each case is
    # refused for its own reason only
    ("no query", "compat", lambda b: Webhook("POST", URL, {}, {}, b)),
    ("wrong signature", "compat", lambda b: plain(b, signature=hashlib.sha1(b"x").hexdigest())),
    ("timestamp changed after signing", "compat", lambda b: plain(b, timestamp=str(int(TS) + 1))),
    ("stale timestamp (a replayed URL)", "compat", lambda b: plain(
        b, timestamp="1411525903", signature=signature(TOKEN, "1411525903", NONCE))),
    ("plain post when the account is in safe mode", "safe", lambda b: plain(b)),
    ("safe: wrong msg_signature", "compat", lambda b: Webhook(
        "POST", URL, dict(safe(b).query, msg_signature="0" * 40), {}, safe(b).body)),
    ("safe: missing msg_signature", "compat", lambda b: Webhook(
        "POST", URL, {k: v for k, v in safe(b).query.items() if k != "msg_signature"}, {},
        safe(b).body)),
    ("safe: message for another AppID", "compat", lambda b: _other_appid(b)),
    ("safe: ciphertext tampered (and re-signed)", "compat", lambda b: _resigned(_tampered(b))),
]


def _resigned(h: Webhook) -> Webhook:
    enc = ET.fromstring(h.body).find("Encrypt").text
    return Webhook("POST", URL, query(encrypt_type="aes",
                                      msg_signature=signature(TOKEN, TS, NONCE, enc)), {}, h.body)


@pytest.mark.parametrize("label,mode,make", REFUSED, ids=[c[0] for c in REFUSED])
def test_wechat_refused(label, mode, make):
    body = xml(MsgType="text", Content="hi", MsgId="1")
    assert channel(mode=mode).verify(plain(body) if mode == "compat" else safe(body))
    assert not channel(mode=mode).verify(make(body))


def test_wechat_plain_mode_refuses_encrypted_posts_without_a_key():
    ch = channel(mode="plain", encoding_aes_key="")
    assert not ch.verify(safe(xml(MsgType="text", Content="hi", MsgId="1")))


@pytest.mark.parametrize("body", [b"not xml", b"<xml><MsgType>text</MsgType></xml>",
                                  b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml>&a;</xml>'])
def test_wechat_malformed_bodies_are_parse_errors(body):
    ch = channel()
    h = plain(body)
    assert ch.verify(h)
    with pytest.raises(ParseError):
        ch.parse(h)


def _passive(resp) -> dict[str, str]:
    root = ET.fromstring(resp.text)
    return {c.tag: (c.text or "") for c in root}


def test_wechat_passive_reply_plain():
    ch = channel()
    h = plain(xml(MsgType="text", Content="hi", MsgId="1"))
    r = ch.respond(h, [{"msgtype": "text", "text": {"content": "Bonjour ]]> 你好"}}])
    f = _passive(r)
    assert (f["ToUserName"], f["FromUserName"], f["MsgType"], f["Content"]) == \
        (USER, OA, "text", "Bonjour ]]> 你好")
    assert ch.respond(h, []).text == "success"


def test_wechat_passive_reply_news():
    ch = channel()
    h = plain(xml(MsgType="text", Content="hi", MsgId="1"))
    r = ch.respond(h, [{"msgtype": "news", "news": {"articles": [
        {"title": "Soldes", "description": "-50%", "url": "https://shop/s", "picurl": "https://cdn/s.jpg"}]}}])
    root = ET.fromstring(r.text)
    assert root.findtext("MsgType") == "news" and root.findtext("ArticleCount") == "1"
    item = root.find("Articles/item")
    assert [item.findtext(t) for t in ("Title", "Description", "PicUrl", "Url")] == \
        ["Soldes", "-50%", "https://cdn/s.jpg", "https://shop/s"]


def test_wechat_passive_reply_is_encrypted_in_safe_mode():
    ch = channel(mode="safe")
    h = safe(xml(MsgType="text", Content="hi", MsgId="1"))
    r = ch.respond(h, [{"msgtype": "text", "text": {"content": "Bonjour"}}])
    env = _passive(r)
    assert set(env) == {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    assert env["MsgSignature"] == signature(TOKEN, env["TimeStamp"], env["Nonce"], env["Encrypt"])
    inner = ET.fromstring(MessageCrypto(TOKEN, AESKEY, APPID).decrypt(env["Encrypt"]))
    assert (inner.findtext("ToUserName"), inner.findtext("Content")) == (USER, "Bonjour")


def test_wechat_max_age_zero_accepts_old_timestamps():
    ch = channel(max_age=0)
    old = plain(xml(MsgType="text", Content="hi", MsgId="1"), timestamp="1411525903",
                signature=signature(TOKEN, "1411525903", NONCE))
    assert ch.verify(old)
