"""The widget in a real headless Chromium (Debian's package, driven by Playwright): the demo
page served by the gateway, the launcher, the welcome message, a button, the bot's reply."""
from __future__ import annotations

import asyncio
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


def _shop_with_demo_page() -> dict:
    """The tests' shop with its demo page turned on (a tenant has none unless it asks)."""
    shop = copy.deepcopy(SHOP)
    shop["channels"][0]["settings"]["demo_page"] = True
    return shop


async def test_cards_render_as_a_carousel_on_a_phone(gateway, browser, images):
    from gateway.types import Card, Choice, Media, Reply
    shop = _shop_with_demo_page()
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
    gw = await gateway(tenants=[_shop_with_demo_page()])
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

        # The same page on an origin the brand did not list cannot open the socket: the
        # visitor is told so in their language, the developer why in the console, and the
        # widget does not retry (it used to say "reconnecting" and retry for ever).
        shop["channels"][0]["settings"]["allowed_origins"] = ["https://brand.example"]
        await gw.apply(shop)
        ctx = await browser.new_context(locale="fr-FR")
        pg = await ctx.new_page()
        sockets, warnings = _watch(pg)
        await pg.goto(origin + "/")
        await pg.get_by_role("button", name=re.compile("^Discussion avec ")).click()
        status = pg.locator("#causette-widget .status")
        await status.filter(has_text="Cette discussion n'est pas disponible sur ce site.").wait_for()
        await pg.wait_for_timeout(3000)          # the first retry would come after 0.25-0.5 s
        assert len(sockets) == 1
        assert "reconnexion" not in await status.inner_text()
        assert await pg.locator("#causette-widget textarea").is_disabled()
        [warning] = [w for w in warnings if "4401" in w]
        assert origin in warning and "origin not allowed" in warning and "Not reconnecting" in warning
        await ctx.close()
    finally:
        await server.close()


def _watch(page) -> tuple[list, list[str]]:
    """The page's WebSockets, and its console warnings, as they come."""
    sockets: list = []
    warnings: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    return sockets, warnings


async def _active(page) -> str | None:
    """The id (else the class) of the element that has the focus inside the widget, if any."""
    return await page.evaluate("""() => {
        const a = document.querySelector('#causette-widget').shadowRoot.activeElement;
        return a ? (a.id || a.className) : null; }""")


async def _until(cond, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("locale, how, said", [
    ("fr-FR", "a message after the removal", "Cette discussion n'est plus disponible."),
    ("en-GB", "a reconnection after the removal", "This chat is no longer available."),
])
async def test_a_removed_channel_stops_the_widget_with_a_message(gateway, browser, locale, how, said):
    from causette_webchat.hub import hub_for
    shop = _shop_with_demo_page()
    gw = await gateway(tenants=[shop])
    ctx = await browser.new_context(locale=locale)
    page = await ctx.new_page()
    sockets, warnings = _watch(page)
    await page.goto(f"{gw.url}/t/wc-shop/demo")
    await page.locator("#causette-widget .launcher").click()
    await page.locator("#causette-widget .chips .chip").first.wait_for()
    redis = (await gw.registry.get("wc-shop")).channels["web"].runtime.redis
    gone = copy.deepcopy(shop)
    gone["channels"] = []
    await gw.apply(gone)
    if how == "a message after the removal":     # the open socket is told `gone`, closed 4404
        await page.locator("#causette-widget textarea").fill("Femme")
        await page.keyboard.press("Enter")
        await page.locator("#causette-widget .msg.visitor.failed", has_text="Femme").wait_for()
    else:                                        # the handshake itself is refused, 4404
        for peers in list(hub_for(redis).conns.values()):
            for conn in list(peers):
                conn.close(1012, "restart")
        await _until(lambda: len(sockets) == 2)
    status = page.locator("#causette-widget .status")
    await status.filter(has_text=said).wait_for()
    count = len(sockets)
    await page.wait_for_timeout(3000)
    assert len(sockets) == count                 # no reconnection
    assert await page.locator("#causette-widget textarea").is_disabled()
    # Nothing left to click that could not be delivered: the chips (still there unless the
    # visitor wrote) are disabled, and the failed message's "Retry" link became plain text.
    chips = page.locator("#causette-widget .chips .chip")
    if "reconnection" in how:
        assert await chips.count() and await chips.first.is_disabled()
    else:
        assert await page.locator("#causette-widget .note button").count() == 0
        note = page.locator("#causette-widget .msg.visitor.failed + .note")
        assert (await note.inner_text()).strip() == "Non envoyé"
    assert any("4404" in w and "no longer exists" in w for w in warnings), warnings
    await ctx.close()


PLAIN = """<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>Shop</h1><script src="/t/wc-shop/widget.js" data-channel="web" async></script></body></html>"""


async def test_failed_handshakes_stop_after_a_while_and_the_visitor_may_retry(gateway, browser):
    # The widget served from a host whose socket answers 503 (a proxy in front of a gateway
    # that is down): it tried for ever, with "reconnecting" showing. Now MAX_FAILS attempts,
    # then a message and a Retry button. The page's clock is fast-forwarded over the backoff.
    from aiohttp import web
    gw = await gateway(tenants=[copy.deepcopy(SHOP)])
    hits: list[str] = []

    async def socket(request: web.Request, n: int) -> web.Response:
        hits.append(request.headers.get("Upgrade", ""))
        return web.Response(status=503, text="down for maintenance")

    server = await _scripted_site(gw, socket)
    try:
        ctx = await browser.new_context(locale="fr-FR")
        page = await ctx.new_page()
        _, warnings = _watch(page)
        await page.clock.install()
        await page.goto(str(server.make_url("/")))
        await page.get_by_role("button", name=re.compile("^Discussion avec ")).click()
        status = page.locator("#causette-widget .status")
        for n in range(1, 8):
            await _until(lambda: len(hits) >= n)
            await status.filter(has_text="Connexion perdue, reconnexion…").wait_for()
            await page.clock.run_for(31_000)     # longer than the longest backoff
        await _until(lambda: len(hits) >= 8)
        await status.filter(has_text="Connexion impossible pour le moment.").wait_for()
        assert hits == ["websocket"] * 8
        await page.clock.run_for(10 * 60_000)
        await page.wait_for_timeout(500)
        assert len(hits) == 8                     # it stopped
        assert any("8 connections in a row" in w for w in warnings), warnings
        # Not final: the visitor can still type, and Retry starts over.
        assert not await page.locator("#causette-widget textarea").is_disabled()
        await page.get_by_role("button", name="Réessayer").click()
        await _until(lambda: len(hits) == 9)
        await status.filter(has_text="Connexion perdue, reconnexion…").wait_for()
        # The pressed button is gone with the text it was in: focus went to the text box, not
        # to <body>.
        assert await _active(page) == "causette-input"

        async def gives_up_after(n: int) -> None:
            """One more attempt (attempt n), then Retry offered again and nothing more."""
            await page.clock.run_for(31_000)
            await _until(lambda: len(hits) == n)
            await status.filter(has_text="Connexion impossible pour le moment.").wait_for()
            await page.clock.run_for(10 * 60_000)
            await page.wait_for_timeout(500)
            assert len(hits) == n

        # A retry that fails again does not take another minute and a half of "reconnecting":
        # one more attempt, then Retry is offered again.
        await gives_up_after(10)
        # The browser coming back online starts over the same way.
        await page.evaluate("() => window.dispatchEvent(new Event('online'))")
        await _until(lambda: len(hits) == 11)
        await gives_up_after(12)
        await ctx.close()
    finally:
        await server.close()


@pytest.mark.parametrize("locale, one, two", [("fr-FR", "1 nouveau message", "2 nouveaux messages"),
                                              ("en-GB", "1 new message", "2 new messages")])
async def test_the_unread_count_is_said_with_its_plural(gateway, browser, locale, one, two):
    from gateway.types import Reply
    gw = await gateway(tenants=[_shop_with_demo_page()])
    ctx = await browser.new_context(locale=locale)
    page = await ctx.new_page()
    await page.goto(f"{gw.url}/t/wc-shop/demo")
    launcher = page.locator("#causette-widget .launcher")
    await launcher.click()
    await page.locator("#causette-widget .chips .chip").first.wait_for()
    await page.keyboard.press("Escape")                    # closed: news counts as unread
    visitor = await page.evaluate("() => JSON.parse(localStorage.getItem('causette:wc-shop:web:id')).visitor")
    ch = (await gw.registry.get("wc-shop")).channels["web"]
    label = "() => document.querySelector('#causette-widget').shadowRoot.querySelector('.launcher').getAttribute('aria-label')"
    for n, said in ((1, one), (2, two)):
        [payload] = ch.render(Reply(text=f"news {n}"))
        assert (await ch.send(visitor, payload, key=f"news:{n}")).status == "sent"
        await page.wait_for_function(f"s => ({label})().endsWith(' – ' + s)", arg=said)
        assert await page.locator("#causette-widget .badge").inner_text() == str(n)
    assert "(" not in await page.evaluate(label)
    await ctx.close()


async def test_a_final_stop_keeps_focus_in_the_panel_and_says_what_was_not_sent(gateway, browser):
    # On a phone the panel is full screen and the launcher hidden: with the focused text box
    # disabled, focus fell to <body> and Escape (the panel's) no longer closed anything.
    from causette_webchat.hub import hub_for
    shop = _shop_with_demo_page()
    gw = await gateway(tenants=[shop])
    ctx = await browser.new_context(locale="en-GB", viewport={"width": 390, "height": 780},
                                    is_mobile=True, has_touch=True)
    page = await ctx.new_page()
    _, warnings = _watch(page)
    await page.goto(f"{gw.url}/t/wc-shop/demo")
    launcher = page.locator("#causette-widget .launcher")
    await launcher.click()
    await page.locator("#causette-widget .chips .chip").first.wait_for()
    textarea = page.locator("#causette-widget textarea")
    await textarea.click()
    assert await _active(page) == "causette-input"
    assert not await launcher.is_visible()
    redis = (await gw.registry.get("wc-shop")).channels["web"].runtime.redis
    gone = copy.deepcopy(shop)
    gone["channels"] = []
    await gw.apply(gone)
    # A message sent while the socket is down (the page's script, the moment "reconnecting"
    # shows): it waits, unsent, and the reconnection it triggers is refused with 4404.
    await page.evaluate("""() => {
        const status = document.querySelector('#causette-widget').shadowRoot.querySelector('.status');
        const watch = new MutationObserver(() => {
            if (status.textContent.includes('reconnecting')) { watch.disconnect(); Causette.send('Women'); }
        });
        watch.observe(status, {childList: true, characterData: true, subtree: true});
    }""")
    for peers in list(hub_for(redis).conns.values()):
        for conn in list(peers):
            conn.close(1012, "restart")
    status = page.locator("#causette-widget .status")
    await status.filter(has_text="This chat is no longer available. Reload the page to try again.").wait_for()

    # What was waiting is said not sent, in words; no typing dots, no dead links.
    mine = page.locator("#causette-widget .msg.visitor.failed", has_text="Women")
    await mine.wait_for()
    assert (await page.locator("#causette-widget .msg.visitor.failed + .note").inner_text()).strip() == "Not sent"
    assert await page.locator("#causette-widget .note button").count() == 0
    assert await page.locator("#causette-widget .typing").is_hidden()
    assert await textarea.is_disabled()
    assert await textarea.get_attribute("placeholder") == "This chat is no longer available."

    # Focus moved to the status, which the dialog names as its description; Escape closes.
    assert await _active(page) == "causette-status"
    dialog = page.get_by_role("dialog")
    assert await dialog.get_attribute("aria-describedby") == "causette-status"
    await page.keyboard.press("Escape")
    await dialog.wait_for(state="hidden")
    assert await launcher.is_visible()
    assert await _active(page) == "launcher"
    # Opened again, the status has the focus, not the disabled text box.
    await launcher.click()
    await dialog.wait_for()
    await page.wait_for_function(
        "() => document.querySelector('#causette-widget').shadowRoot.activeElement?.id === 'causette-status'")

    # The page's script sending now is told, in the console, that nothing went.
    before = await page.locator("#causette-widget .msg.visitor").count()
    await page.evaluate("() => Causette.send('Men')")
    await _until(lambda: any("not sent" in w and "Men" in w for w in warnings))
    assert await page.locator("#causette-widget .msg.visitor").count() == before
    await ctx.close()


async def test_an_idle_page_learns_its_channel_was_removed_at_its_next_ping(gateway, browser):
    # An open socket used to show "Online" until the visitor wrote. The widget pings every
    # 25 s; the answer now says `gone` and closes 4404. The page clock is fast-forwarded.
    from gateway.types import Card, Choice, Reply
    shop = _shop_with_demo_page()
    gw = await gateway(tenants=[shop])
    ctx = await browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 860})
    page = await ctx.new_page()
    sockets, warnings = _watch(page)
    await page.clock.install()
    await page.goto(f"{gw.url}/t/wc-shop/demo")
    await page.locator("#causette-widget .launcher").click()
    await page.locator("#causette-widget .chips .chip").first.wait_for()
    visitor = await page.evaluate("() => JSON.parse(localStorage.getItem('causette:wc-shop:web:id')).visitor")
    ch = (await gw.registry.get("wc-shop")).channels["web"]
    reply = Reply(text="Nos produits", cards=[Card(title=f"Produit {i}", buttons=[Choice(id=f"p{i}", title="Ajouter")])
                                              for i in range(3)])
    for j, payload in enumerate(ch.render(reply)):
        assert (await ch.send(visitor, payload, key=f"cards:{j}")).status == "sent"
    cards = page.locator("#causette-widget .card")
    await cards.nth(2).wait_for(state="attached")
    sub = page.locator("#causette-widget .sub")
    assert (await sub.inner_text()).strip() == "En ligne"

    gone = copy.deepcopy(shop)
    gone["channels"] = []
    await gw.apply(gone)
    await page.clock.run_for(26_000)            # one ping
    status = page.locator("#causette-widget .status")
    await status.filter(has_text="Cette discussion n'est plus disponible. Rechargez la page pour réessayer.").wait_for()
    assert (await sub.inner_text()).strip() == "Hors ligne"
    assert len(sockets) == 1
    [warning] = [w for w in warnings if "4404" in w]
    assert "(gone: this chat is no longer available)" in warning
    # The cards' buttons are disabled, not the carousel's arrows (they only scroll).
    assert await cards.nth(0).get_by_role("button", name="Ajouter").is_disabled()
    assert not await page.locator("#causette-widget .nav.next").is_disabled()
    await ctx.close()


async def _scripted_site(gw, handler):
    """A site serving the gateway's widget.js, whose socket is `handler(request, n)` (n: 1, 2…)."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer
    async with gw.http.get(gw.url + "/t/wc-shop/widget.js") as r:
        js = await r.text()
    count = [0]

    async def socket(request: web.Request) -> web.StreamResponse:
        count[0] += 1
        return await handler(request, count[0])

    async def home(request: web.Request) -> web.Response:
        return web.Response(text=PLAIN, content_type="text/html")

    async def script(request: web.Request) -> web.Response:
        return web.Response(text=js, content_type="application/javascript")

    site = web.Application()
    site.router.add_get("/", home)
    site.router.add_get("/t/wc-shop/widget.js", script)
    site.router.add_get("/t/wc-shop/plugins/webchat/ws", socket)
    server = TestServer(site, host="127.0.0.1")
    await server.start_server()
    return server


READY = {"type": "ready", "visitor": "v_" + "a" * 22, "token": "t", "seq": 0, "resumed": True}


async def test_no_typing_dots_under_cannot_connect(gateway, browser):
    # The bot acknowledged "un" with answers up to seq 99 that never came, and "deux" went out
    # on a socket that then dropped: both kept the typing dots on under "Cannot connect".
    import json
    from aiohttp import web
    gw = await gateway(tenants=[copy.deepcopy(SHOP)])
    failures: list[int] = []

    async def handler(request: web.Request, n: int) -> web.StreamResponse:
        if n > 1:
            failures.append(n)
            return web.Response(status=503, text="down")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()                                   # hello
        await ws.send_str(json.dumps(READY))
        async for msg in ws:
            f = json.loads(msg.data)
            if f.get("text") == "deux":
                await ws.close(code=1012, message=b"restart")
                break
            if f["type"] in ("open", "text"):
                await ws.send_str(json.dumps({"type": "ack", "id": f["id"], "seq": 99 if f["type"] == "text" else 0}))
        return ws

    server = await _scripted_site(gw, handler)
    try:
        ctx = await browser.new_context(locale="fr-FR")
        page = await ctx.new_page()
        await page.clock.install()
        await page.goto(str(server.make_url("/")))
        await page.get_by_role("button", name=re.compile("^Discussion avec ")).click()
        textarea = page.locator("#causette-widget textarea")
        typing = page.locator("#causette-widget .typing")
        await page.locator("#causette-widget .sub", has_text="En ligne").wait_for()
        await textarea.fill("un")
        await page.keyboard.press("Enter")
        await typing.wait_for()                              # the answer is on its way
        await textarea.fill("deux")
        await page.keyboard.press("Enter")
        status = page.locator("#causette-widget .status")
        for n in range(1, 8):
            await _until(lambda: len(failures) >= n)
            await status.filter(has_text="Connexion perdue, reconnexion…").wait_for()
            await page.clock.run_for(31_000)
        await _until(lambda: len(failures) >= 8)
        await status.filter(has_text="Connexion impossible pour le moment.").wait_for()
        assert await typing.is_hidden()
        # Not a final stop: "deux" still waits to be sent, with no "not sent" note.
        await page.locator("#causette-widget .msg.visitor.pending", has_text="deux").wait_for()
        assert await page.locator("#causette-widget .note").count() == 0
        await ctx.close()
    finally:
        await server.close()


async def test_the_console_does_not_quote_an_unrelated_error(gateway, browser):
    # An error frame about something else, long before a 4404 that came without one, was
    # written in the 4404's warning as if it were the reason.
    import json
    from aiohttp import web
    gw = await gateway(tenants=[copy.deepcopy(SHOP)])

    async def handler(request: web.Request, n: int) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        await ws.send_str(json.dumps(READY))
        await ws.send_str(json.dumps({"type": "error", "code": "bad_frame", "message": "an old unrelated error"}))
        await ws.send_str(json.dumps({"type": "pong"}))
        await ws.close(code=4404, message=b"gone")
        return ws

    server = await _scripted_site(gw, handler)
    try:
        ctx = await browser.new_context(locale="en-GB")
        page = await ctx.new_page()
        _, warnings = _watch(page)
        await page.goto(str(server.make_url("/")))
        await page.get_by_role("button", name=re.compile("^Chat with ")).click()
        await page.locator("#causette-widget .status", has_text="This chat is no longer available.").wait_for()
        await _until(lambda: any("4404" in w for w in warnings))
        [warning] = [w for w in warnings if "4404" in w]
        assert "no longer exists" in warning and "unrelated" not in warning
        await ctx.close()
    finally:
        await server.close()
