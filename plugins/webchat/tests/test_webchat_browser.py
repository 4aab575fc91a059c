"""The widget in a real headless Chromium (Debian's package, driven by Playwright): the demo
page served by the gateway, the launcher, the welcome message, a button, the bot's reply."""
from __future__ import annotations

import copy
import os
import re
import shutil
from pathlib import Path

import pytest

from wc_support import SHOP

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("CAUSETTE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-gpu", "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (make test installs it)")


def _tenant(demo_tenant_path: Path) -> tuple[dict, str]:
    """The demo brand when it has a webchat channel, else the tests' own shop."""
    if demo_tenant_path.exists():
        from gateway.testing import load_demo
        demo = load_demo()
        web = [c["id"] for c in demo.get("channels", []) if c.get("type") == "webchat"]
        if web and "webchat" in demo.get("plugins", {}):
            return demo, web[0]
    return copy.deepcopy(SHOP), "web"


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


async def test_widget_opens_and_answers_in_chromium(gateway, browser):
    tenant, channel = _tenant(ROOT / "tenants" / "demo.json")
    gw = await gateway(tenants=[tenant])
    ctx = await browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 860})
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{gw.url}/t/{tenant['slug']}/demo?channel={channel}")

    launcher = page.get_by_role("button", name=re.compile("^Discussion avec "))
    await launcher.click()
    panel = page.get_by_role("dialog")
    await panel.wait_for()
    assert await launcher.get_attribute("aria-expanded") == "true"

    # The welcome comes from the flow's `widget` trigger; its buttons become chips.
    bot = page.locator("#causette-widget .msg.bot")
    await bot.first.wait_for()
    chips = page.locator("#causette-widget .chips .chip")
    await chips.first.wait_for()
    welcome = await bot.first.inner_text()
    assert welcome.strip()
    before = await bot.count()
    choice = (await chips.first.inner_text()).strip()
    await chips.first.click()

    # The click shows as the visitor's message, then the bot answers.
    mine = page.locator("#causette-widget .msg.visitor", has_text=choice)
    await mine.wait_for()
    await page.wait_for_function(
        """n => document.querySelector('#causette-widget').shadowRoot
                   .querySelectorAll('.msg.bot').length > n""", arg=before)
    await page.locator("#causette-widget .msg.visitor.pending").wait_for(state="detached")
    reply = (await bot.nth(before).inner_text()).strip()
    assert reply and reply != welcome
    # With the panel open, the newest bot message is reported as read (once, remembered).
    await page.wait_for_function(
        f"() => localStorage.getItem('causette:{tenant['slug']}:{channel}:seen')")

    # Keyboard: Escape closes the panel and gives focus back to the launcher.
    await page.keyboard.press("Escape")
    await panel.wait_for(state="hidden")
    assert await page.evaluate(
        "() => document.querySelector('#causette-widget').shadowRoot.activeElement?.className") == "launcher"
    await launcher.click()
    await panel.wait_for()
    await page.locator("#causette-widget textarea:focus").wait_for()

    shots = ROOT / "var"
    shots.mkdir(exist_ok=True)
    await page.screenshot(path=str(shots / "webchat-demo.png"), animations="disabled")
    await ctx.close()
    assert not errors, errors


SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="460" height="260">'
       '<rect width="460" height="260" fill="{bg}"/><circle cx="230" cy="130" r="70" fill="#ffffff" '
       'fill-opacity=".35"/></svg>')


@pytest.fixture
async def images():
    """Product pictures from a server of their own, as a brand's CDN would serve them."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    async def picture(request: web.Request) -> web.Response:
        bg = {"1": "#c8a15a", "2": "#7f1d1d", "3": "#292524"}.get(request.match_info["n"], "#a8a29e")
        return web.Response(text=SVG.format(bg=bg), content_type="image/svg+xml")

    app = web.Application()
    app.router.add_get("/img/{n}.svg", picture)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/img"))
    await server.close()


async def test_cards_render_as_a_carousel_on_a_phone(gateway, browser, images):
    from gateway.types import Card, Choice, Media, Reply
    shop = copy.deepcopy(SHOP)
    gw = await gateway(tenants=[shop])
    ctx = await browser.new_context(locale="en-GB", viewport={"width": 390, "height": 780},
                                    is_mobile=True, has_touch=True)
    page = await ctx.new_page()
    await page.goto(f"{gw.url}/t/wc-shop/demo")
    await page.get_by_role("button", name=re.compile("^Chat with ")).click()   # English browser
    await page.locator("#causette-widget .chips .chip").first.wait_for()
    visitor = await page.evaluate("() => JSON.parse(localStorage.getItem('causette:wc-shop:web:id')).visitor")

    # A reply with an image and three product cards, sent the way the gateway sends replies.
    rt = await gw.registry.get("wc-shop")
    ch = rt.channels["web"]
    reply = Reply(text="Our **best sellers** this week: https://shop.example/sale",
                  media=[Media(kind="image", url=f"{images}/9.svg", caption="Winter collection")],
                  cards=[Card(title=t, subtitle=p, image=f"{images}/{i}.svg", url="https://shop.example/p",
                              buttons=[Choice(id=f"buy-{i}", title="Add to basket")])
                         for i, (t, p) in enumerate([("Wool coat", "€89 instead of €179"),
                                                     ("Roll-neck jumper", "€29 instead of €49"),
                                                     ("Leather boots", "€119 instead of €169")], 1)])
    for j, payload in enumerate(ch.render(reply)):
        assert (await ch.send(visitor, payload, key=f"cards:{j}")).status == "sent"

    cards = page.locator("#causette-widget .card")
    await cards.nth(2).wait_for(state="attached")
    assert await cards.count() == 3
    assert await page.locator("#causette-widget .msg.bot strong").inner_text() == "best sellers"
    link = page.locator("#causette-widget .msg.bot a[href='https://shop.example/sale']")
    assert await link.get_attribute("rel") == "noopener noreferrer"
    await page.locator("#causette-widget figure.media img").wait_for()
    shots = ROOT / "var"
    shots.mkdir(exist_ok=True)
    await page.screenshot(path=str(shots / "webchat-cards-phone.png"), animations="disabled")

    # A card's button answers like a chip: the flow gets the choice.
    await page.get_by_role("button", name="Next card").click()
    await cards.nth(0).get_by_role("button", name="Add to basket").click()
    await page.locator("#causette-widget .msg.visitor", has_text="Add to basket").wait_for()
    await page.locator("#causette-widget .msg.visitor.pending").wait_for(state="detached")
    await ctx.close()


async def test_reload_keeps_the_history_and_a_dropped_socket_resumes(gateway, browser):
    from causette_webchat.hub import hub_for
    from gateway.types import Reply
    gw = await gateway(tenants=[copy.deepcopy(SHOP)])
    ctx = await browser.new_context(locale="fr-FR")
    page = await ctx.new_page()
    await page.goto(f"{gw.url}/t/wc-shop/demo")
    await page.get_by_role("button", name=re.compile("^Discussion avec ")).click()
    welcome = page.locator("#causette-widget .msg.bot", has_text="Bienvenue chez Maison Test")
    await welcome.wait_for()

    # Another page of the site: the panel stays open, the history comes back, and the
    # opening is not announced again (no second welcome).
    await page.reload()
    await welcome.wait_for()
    await page.locator("#causette-widget textarea").fill("Homme")
    await page.keyboard.press("Enter")
    await page.locator("#causette-widget .msg.bot", has_text="voici nos offres men").wait_for()
    assert await welcome.count() == 1

    # The connection drops (the server closes it); a message sent meanwhile shows once.
    visitor = await page.evaluate("() => JSON.parse(localStorage.getItem('causette:wc-shop:web:id')).visitor")
    rt = await gw.registry.get("wc-shop")
    ch = rt.channels["web"]
    for peers in list(hub_for(rt.channels["web"].runtime.redis).conns.values()):
        for conn in list(peers):
            conn.close(1012, "restart")
    [payload] = ch.render(Reply(text="Vous êtes toujours là ? -10 % avec le code HIVER10", from_agent="Julie"))
    assert (await ch.send(visitor, payload, key="while-away")).status == "sent"
    news = page.locator("#causette-widget .msg.bot", has_text="HIVER10")
    await news.wait_for()
    await page.locator("#causette-widget .agent-name", has_text="Julie").wait_for()
    await page.locator("#causette-widget textarea").fill("merci")
    await page.keyboard.press("Enter")
    await page.locator("#causette-widget .msg.visitor", has_text="merci").wait_for()
    await page.locator("#causette-widget .msg.visitor.pending").wait_for(state="detached")
    assert await news.count() == 1
    await ctx.close()


HOSTILE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Another site</title>
<style>* {{ font-family: "Comic Sans MS", cursive !important; color: lime !important; }}
button {{ display: none !important; }} div {{ border: 5px dashed red; padding: 30px; }}</style></head>
<body><h1>A brand's own site, on another origin, with loud CSS</h1>
<script src="{gateway}/t/wc-shop/widget.js" data-channel="web" async></script></body></html>"""


async def test_widget_on_another_site_keeps_its_looks_and_checks_origins(gateway, browser):
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    where: dict[str, str] = {}

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=HOSTILE.format(gateway=where["gateway"]), content_type="text/html")

    site = web.Application()
    site.router.add_get("/", page)
    server = TestServer(site, host="127.0.0.1")
    await server.start_server()
    origin = str(server.make_url("")).rstrip("/")
    shop = copy.deepcopy(SHOP)
    shop["channels"][0]["settings"]["allowed_origins"] = [origin]
    gw = await gateway(tenants=[shop])
    where["gateway"] = gw.url
    try:
        ctx = await browser.new_context(locale="fr-FR")
        pg = await ctx.new_page()
        await pg.goto(origin + "/")
        launcher = pg.get_by_role("button", name=re.compile("^Discussion avec "))
        await launcher.click()                      # the site hides every <button>: not ours
        await pg.locator("#causette-widget .chips .chip").first.click()
        await pg.locator("#causette-widget .msg.bot", has_text="voici nos offres").wait_for()
        color = await pg.locator("#causette-widget .msg.bot").first.evaluate("e => getComputedStyle(e).color")
        assert color == "rgb(17, 24, 39)"           # the site's lime did not leak in
        shots = ROOT / "var"
        shots.mkdir(exist_ok=True)
        await pg.screenshot(path=str(shots / "webchat-other-site.png"), animations="disabled")
        await ctx.close()

        # The same page on an origin the brand did not list cannot open the socket.
        shop["channels"][0]["settings"]["allowed_origins"] = ["https://brand.example"]
        await gw.apply(shop)
        ctx = await browser.new_context(locale="fr-FR")
        pg = await ctx.new_page()
        await pg.goto(origin + "/")
        await pg.get_by_role("button", name=re.compile("^Discussion avec ")).click()
        await pg.locator("#causette-widget .status", has_text="reconnexion").wait_for()
        await ctx.close()
    finally:
        await server.close()
