/* Causette web chat widget. Plain JS, no dependencies, no build step.
 *
 *   <script src="https://HOST/t/TENANT/widget.js" data-channel="web" async></script>
 *
 * Optional attributes: data-ref (a referral tag that may start a given flow), data-open="true"
 * (open the panel on load). window.Causette.open() / .close() / .toggle() / .send(text).
 * The protocol is described in docs/channels/webchat.md; the gateway fills CONFIG below.
 */
(function () {
  "use strict";
  var CONFIG = /*__CONFIG__*/null;
  var script = document.currentScript;
  if (!script) {
    var all = document.querySelectorAll('script[src*="/widget.js"]');
    script = all[all.length - 1];
  }
  if (!CONFIG || !script) return;

  var src = new URL(script.src, location.href);
  var base = src.origin + src.pathname.replace(/\/widget\.js$/, "");
  var channelId = script.getAttribute("data-channel") || Object.keys(CONFIG.channels)[0];
  var cfg = CONFIG.channels[channelId];
  if (!cfg) {
    if (window.console) console.warn("causette: no webchat channel " + channelId + " for " + CONFIG.tenant);
    return;
  }
  var ref = script.getAttribute("data-ref") || "";
  var KEY = "causette:" + CONFIG.tenant + ":" + channelId;

  // --- language ---------------------------------------------------------------------------
  var STRINGS = {
    fr: {
      close: "Fermer la discussion", label: "Votre message",
      placeholder: "Écrivez votre message…", send: "Envoyer", typing: "{name} est en train d'écrire",
      online: "En ligne", connecting: "Connexion…", reconnecting: "Connexion perdue, reconnexion…",
      failed: "Non envoyé. Réessayer", retrying: "Envoi en attente…", powered: "Propulsé par Causette",
      prev: "Carte précédente", next: "Carte suivante", cardOf: "{i} sur {n}", view: "Voir",
      unread: ["{n} nouveau message", "{n} nouveaux messages"], file: "Fichier", you: "Vous", agent: "Conseiller",
      chat: "Discussion avec {name}", choices: "Réponses proposées", cards: "Carrousel",
      offline: "Hors ligne", refused: "Cette discussion n'est pas disponible sur ce site.",
      gone: "Cette discussion n'est plus disponible.",
      gaveUp: "Connexion impossible pour le moment.", retry: "Réessayer",
      reload: "Rechargez la page pour réessayer.", notSent: "Non envoyé"
    },
    en: {
      close: "Close the chat", label: "Your message",
      placeholder: "Type your message…", send: "Send", typing: "{name} is typing",
      online: "Online", connecting: "Connecting…", reconnecting: "Connection lost, reconnecting…",
      failed: "Not sent. Retry", retrying: "Waiting to send…", powered: "Powered by Causette",
      prev: "Previous card", next: "Next card", cardOf: "{i} of {n}", view: "View",
      unread: ["{n} new message", "{n} new messages"], file: "File", you: "You", agent: "Agent",
      chat: "Chat with {name}", choices: "Suggested answers", cards: "Carousel",
      offline: "Offline", refused: "This chat is not available on this site.",
      gone: "This chat is no longer available.",
      gaveUp: "Cannot connect right now.", retry: "Retry",
      reload: "Reload the page to try again.", notSent: "Not sent"
    }
  };
  // Which form of a [singular, plural] text a count takes: French says "1 nouveau message"
  // (and 0), English "1 new message" but "0 new messages".
  var PLURAL = { fr: function (n) { return n < 2 ? 0 : 1; }, en: function (n) { return n === 1 ? 0 : 1; } };
  function pickLang() {
    if (STRINGS[cfg.locale]) return cfg.locale;
    var langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ""];
    for (var i = 0; i < langs.length; i++) {
      var l = String(langs[i]).slice(0, 2).toLowerCase();
      if (STRINGS[l]) return l;
    }
    return STRINGS[CONFIG.locale] ? CONFIG.locale : "fr";
  }
  var lang = pickLang();
  var T = STRINGS[lang];
  function t(key, vars) {
    var text = T[key];
    if (typeof text !== "string") text = text[PLURAL[lang](vars ? Number(vars.n) : 0)];
    return text.replace(/\{(\w+)\}/g, function (_, k) { return vars && k in vars ? vars[k] : ""; });
  }
  var title = cfg.title || CONFIG.name;

  // --- storage (private browsing may refuse it: the widget still works for the page) -------
  function get(store, k) { try { return window[store].getItem(KEY + ":" + k); } catch (e) { return null; } }
  function put(store, k, v) { try { if (v === null) window[store].removeItem(KEY + ":" + k); else window[store].setItem(KEY + ":" + k, v); } catch (e) { /* ignore */ } }
  function uid() {
    var a = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  var ident = null;
  try { ident = JSON.parse(get("localStorage", "id") || "null"); } catch (e) { ident = null; }
  // Only an identity the server could have issued: anything else in the hello would be
  // refused as a bad first frame (4400), on every page, for good.
  if (!ident || typeof ident.visitor !== "string" || !/^v_[A-Za-z0-9_-]{16,40}$/.test(ident.visitor) ||
      typeof ident.token !== "string" || ident.token.length > 128) ident = null;

  // --- DOM ---------------------------------------------------------------------------------
  function h(tag, attrs, kids) {
    var el = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (attrs[k] === null || attrs[k] === undefined || attrs[k] === false) continue;
      if (k === "text") el.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), attrs[k]);
      else el.setAttribute(k, attrs[k] === true ? "" : attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c) el.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return el;
  }
  function svg(path, size) {
    var ns = "http://www.w3.org/2000/svg";
    var s = document.createElementNS(ns, "svg");
    s.setAttribute("viewBox", "0 0 24 24"); s.setAttribute("width", size || 24); s.setAttribute("height", size || 24);
    s.setAttribute("aria-hidden", "true"); s.setAttribute("focusable", "false");
    var p = document.createElementNS(ns, "path");
    p.setAttribute("d", path); p.setAttribute("fill", "currentColor");
    s.appendChild(p);
    return s;
  }
  var ICON_CHAT = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2zm3 6a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z";
  var ICON_CLOSE = "M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7 2.9 18.3 9.2 12 2.9 5.7l1.4-1.4 6.3 6.3 6.3-6.3z";
  var ICON_SEND = "M3 20.5 21 12 3 3.5v6.6L15 12 3 13.9z";
  var ICON_DOWN = "M7.4 8.6 12 13.2l4.6-4.6L18 10l-6 6-6-6z";
  var ICON_PREV = "M15.4 7.4 14 6l-6 6 6 6 1.4-1.4L10.8 12z";
  var ICON_NEXT = "M8.6 16.6 10 18l6-6-6-6-1.4 1.4 4.6 4.6z";

  function contrast(hex) {
    var n = parseInt(hex.slice(1), 16), r = n >> 16 & 255, g = n >> 8 & 255, b = n & 255;
    return (0.299 * r + 0.587 * g + 0.114 * b) > 160 ? "#111827" : "#ffffff";
  }

  var CSS = [
    ":host{all:initial}",
    "*,*::before,*::after{box-sizing:border-box}",
    ".root{--c:" + cfg.color + ";--on:" + contrast(cfg.color) + ";font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#111827;position:fixed;bottom:20px;" + (cfg.position === "left" ? "left" : "right") + ":20px;z-index:2147483000;-webkit-font-smoothing:antialiased}",
    ".sr{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}",
    "button{font:inherit;color:inherit;cursor:pointer}",
    ":focus-visible{outline:3px solid #2563eb;outline-offset:2px}",
    ".launcher{width:60px;height:60px;border-radius:50%;border:0;background:var(--c);color:var(--on);display:grid;place-items:center;box-shadow:0 8px 24px rgba(0,0,0,.22);transition:transform .15s ease;position:relative}",
    ".launcher:hover{transform:scale(1.06)}",
    ".badge{position:absolute;top:-2px;right:-2px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;background:#dc2626;color:#fff;font-size:12px;font-weight:700;display:grid;place-items:center;border:2px solid #fff}",
    ".badge[hidden]{display:none}",
    ".panel{position:absolute;bottom:76px;" + (cfg.position === "left" ? "left" : "right") + ":0;width:380px;height:min(620px,calc(100vh - 120px));background:#fff;border-radius:18px;box-shadow:0 18px 50px rgba(15,23,42,.28);display:flex;flex-direction:column;overflow:hidden;transform-origin:bottom " + (cfg.position === "left" ? "left" : "right") + ";animation:pop .18s ease-out}",
    ".panel[hidden]{display:none}",
    "@keyframes pop{from{opacity:0;transform:translateY(12px) scale(.97)}to{opacity:1;transform:none}}",
    ".head{background:var(--c);color:var(--on);padding:14px 12px 14px 16px;display:flex;align-items:center;gap:12px}",
    ".avatar{width:40px;height:40px;border-radius:50%;background:rgba(255,255,255,.22);display:grid;place-items:center;font-weight:700;font-size:17px;flex:none}",
    ".who{flex:1;min-width:0}",
    ".title{font-weight:700;font-size:16px;margin:0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}",
    ".sub{font-size:12.5px;opacity:.9;display:flex;align-items:center;gap:6px}",
    ".dot{width:8px;height:8px;border-radius:50%;background:#4ade80;flex:none}",
    ".sub.down .dot{background:#fbbf24}",
    ".x{border:0;background:transparent;color:var(--on);width:36px;height:36px;border-radius:50%;display:grid;place-items:center}",
    ".x:hover{background:rgba(255,255,255,.18)}",
    ".log{flex:1;overflow-y:auto;padding:16px 14px 8px;background:#f6f7fb;display:flex;flex-direction:column;gap:8px;scroll-behavior:smooth}",
    ".log>*{flex-shrink:0}",
    ".msg{max-width:82%;padding:9px 13px;border-radius:16px;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word}",
    ".msg a{color:inherit;text-decoration:underline}",
    ".bot{align-self:flex-start;background:#fff;border:1px solid #e5e7eb;border-bottom-left-radius:6px}",
    ".visitor{align-self:flex-end;background:var(--c);color:var(--on);border-bottom-right-radius:6px}",
    ".visitor.pending{opacity:.7}",
    ".visitor.failed{background:#fee2e2;color:#991b1b}",
    ".note{align-self:flex-end;font-size:12px;color:#6b7280;margin-top:-4px}",
    ".note button{border:0;background:none;color:#b91c1c;text-decoration:underline;padding:0}",
    ".note button:disabled{color:#6b7280;text-decoration:none;cursor:default}",
    ".visitor.failed+.note{color:#b91c1c}",
    ".agent-name{font-size:11.5px;color:#6b7280;margin:4px 0 -4px 4px}",
    ".greeting{font-style:normal}",
    ".media{align-self:flex-start;max-width:82%;border-radius:14px;overflow:hidden;border:1px solid #e5e7eb;background:#fff}",
    ".media img{display:block;max-width:100%;max-height:260px;object-fit:cover}",
    ".media figcaption{padding:6px 10px;font-size:13px;color:#374151}",
    ".chips{display:flex;flex-wrap:wrap;gap:6px;align-self:flex-start;margin:2px 0 4px}",
    ".chip{border:1.5px solid var(--c);background:#fff;color:var(--c);border-radius:999px;padding:6px 14px;font-size:14px;font-weight:600;transition:background .12s,color .12s}",
    ".chip:hover{background:var(--c);color:var(--on)}",
    ".chip:disabled{opacity:.5;cursor:default}",
    ".carousel{align-self:stretch;position:relative;margin:2px 0 4px}",
    ".track{display:flex;gap:10px;overflow-x:auto;scroll-snap-type:x mandatory;padding:2px 2px 8px;scrollbar-width:thin}",
    ".card{flex:0 0 230px;scroll-snap-align:start;background:#fff;border:1px solid #e5e7eb;border-radius:14px;overflow:hidden;display:flex;flex-direction:column}",
    ".card img{width:100%;height:130px;object-fit:cover;display:block;background:#eef0f5}",
    ".card .body{padding:10px 12px;flex:1}",
    ".card h3{font-size:15px;margin:0 0 4px;line-height:1.3}",
    ".card p{font-size:13px;color:#4b5563;margin:0}",
    ".card .acts{display:flex;flex-direction:column;border-top:1px solid #f0f1f4}",
    ".card .acts button,.card .acts a{border:0;border-top:1px solid #f0f1f4;background:#fff;color:var(--c);font-weight:600;font-size:14px;padding:9px;text-align:center;text-decoration:none}",
    ".card .acts :first-child{border-top:0}",
    ".card .acts button:hover,.card .acts a:hover{background:#f5f5ff}",
    ".nav{position:absolute;top:50px;width:32px;height:32px;border-radius:50%;border:0;background:#fff;box-shadow:0 2px 8px rgba(0,0,0,.2);display:grid;place-items:center;color:#111827}",
    ".nav.prev{left:-6px}.nav.next{right:-6px}",
    ".nav:disabled{display:none}",
    ".typing{align-self:flex-start;background:#fff;border:1px solid #e5e7eb;border-radius:16px;border-bottom-left-radius:6px;padding:12px 14px;display:flex;gap:4px}",
    ".typing[hidden]{display:none}",
    ".typing i{width:7px;height:7px;border-radius:50%;background:#9ca3af;animation:blink 1.2s infinite both}",
    ".typing i:nth-child(2){animation-delay:.2s}.typing i:nth-child(3){animation-delay:.4s}",
    "@keyframes blink{0%,80%,100%{opacity:.3;transform:translateY(0)}40%{opacity:1;transform:translateY(-3px)}}",
    ".status{font-size:12.5px;text-align:center;color:#92400e;background:#fef3c7;padding:4px 8px}",
    ".status:focus{outline:none}.status:focus-visible{outline:3px solid #2563eb;outline-offset:-3px}",
    ".status:empty{display:none}",
    ".status button{border:0;background:none;color:inherit;font-weight:700;text-decoration:underline;padding:0 0 0 6px}",
    ".status.stopped{color:#991b1b;background:#fee2e2}",
    "textarea:disabled{background:#f3f4f6}",
    "form{display:flex;align-items:flex-end;gap:8px;padding:10px 12px;border-top:1px solid #eceef2;background:#fff;margin:0}",
    "textarea{flex:1;resize:none;border:1px solid #d1d5db;border-radius:12px;padding:9px 12px;font:inherit;color:#111827;max-height:120px;min-height:40px;background:#fff;outline:none}",
    "textarea:focus{border-color:var(--c);box-shadow:0 0 0 3px rgba(17,24,39,.12);outline:none}",
    ".send{width:40px;height:40px;border-radius:50%;border:0;background:var(--c);color:var(--on);display:grid;place-items:center;flex:none}",
    ".send:disabled{opacity:.45;cursor:default}",
    ".foot{font-size:11px;color:#9ca3af;text-align:center;padding:0 0 8px;background:#fff}",
    "@media (max-width:480px){.root{bottom:14px;" + (cfg.position === "left" ? "left" : "right") + ":14px}.panel{position:fixed;inset:0;width:100%;height:100%;border-radius:0;bottom:0}.root.open .launcher{display:none}}",
    "@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important;scroll-behavior:auto!important}}"
  ].join("\n");

  // A tag of our own (no `div {...}` rule of the site matches it) with inline !important
  // styles (which beat the site's): the one element of ours that lives in the site's DOM.
  var host = h("causette-widget", { id: "causette-widget", "data-tenant": CONFIG.tenant,
    style: "all:initial!important;display:block!important;position:static!important" });
  var shadow = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var style = document.createElement("style");
  style.textContent = CSS;

  var badge = h("span", { "class": "badge", hidden: true, "aria-hidden": "true" });
  // One constant name; aria-expanded tells whether the panel is open.
  var iconChat = svg(ICON_CHAT, 28), iconDown = svg(ICON_DOWN, 28);
  iconDown.style.display = "none";
  var launcher = h("button", { "class": "launcher", type: "button", "aria-label": t("chat", { name: title }), "aria-expanded": "false",
    "aria-controls": "causette-panel" }, [iconChat, iconDown, badge]);
  var statusDot = h("span", { "class": "dot", "aria-hidden": "true" });
  var statusText = h("span", { text: cfg.subtitle || t("online") });
  var sub = h("div", { "class": "sub" }, [statusDot, statusText]);
  var closeBtn = h("button", { "class": "x", type: "button", "aria-label": t("close") }, [svg(ICON_CLOSE, 20)]);
  var typing = h("div", { "class": "typing", hidden: true, role: "status", "aria-label": t("typing", { name: title }) },
    [h("i"), h("i"), h("i")]);
  var log = h("div", { "class": "log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
    "aria-label": t("chat", { name: title }), tabindex: "0" }, [typing]);
  // Focusable from script only (tabindex -1): where focus goes when what had it is disabled.
  var status = h("div", { "class": "status", id: "causette-status", role: "status", tabindex: "-1" });
  var input = h("textarea", { id: "causette-input", rows: "1", placeholder: t("placeholder"), maxlength: "4000",
    autocomplete: "off", enterkeyhint: "send" });
  var sendBtn = h("button", { "class": "send", type: "submit", "aria-label": t("send"), disabled: true }, [svg(ICON_SEND, 20)]);
  var form = h("form", {}, [h("label", { "class": "sr", "for": "causette-input", text: t("label") }), input, sendBtn]);
  var panel = h("div", { "class": "panel", id: "causette-panel", role: "dialog", "aria-modal": "false",
    "aria-labelledby": "causette-title", "aria-describedby": "causette-status", hidden: true }, [
    h("div", { "class": "head" }, [
      h("div", { "class": "avatar", "aria-hidden": "true", text: (title || "?").trim().charAt(0).toUpperCase() }),
      h("div", { "class": "who" }, [h("h2", { "class": "title", id: "causette-title", text: title }), sub]),
      closeBtn
    ]),
    status, log, form, h("div", { "class": "foot", text: t("powered") })
  ]);
  var root = h("div", { "class": "root", lang: lang }, [panel, launcher]);
  shadow.appendChild(style);
  shadow.appendChild(root);

  // --- transcript ----------------------------------------------------------------------------
  var shown = {};          // message ids already on screen
  var chips = [];          // the chip rows that still accept a click
  var greetingEl = null;
  var unread = 0;
  var isOpen = false;

  function scroll() { log.scrollTop = log.scrollHeight; }
  function add(el) { log.insertBefore(el, typing); scroll(); }
  function safeUrl(u) {
    try { var x = new URL(u, base); return (x.protocol === "https:" || x.protocol === "http:") ? x.href : null; } catch (e) { return null; }
  }
  // Text with links and **bold**, built as nodes (never innerHTML: the text is untrusted).
  function rich(text) {
    var frag = document.createDocumentFragment();
    var re = /(https?:\/\/[^\s<>"]+[^\s<>".,;:!?)])|\*\*([^*\n]+)\*\*/g, last = 0, m;
    while ((m = re.exec(text))) {
      if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (m[1]) frag.appendChild(h("a", { href: m[1], target: "_blank", rel: "noopener noreferrer", text: m[1] }));
      else frag.appendChild(h("strong", { text: m[2] }));
      last = re.lastIndex;
    }
    if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
    return frag;
  }
  function retireChips() {
    chips.forEach(function (row) { if (row.parentNode) row.parentNode.removeChild(row); });
    chips = [];
  }
  function choiceButton(c, cls) {
    return h("button", { "class": cls, type: "button", title: c.description || null, text: c.title,
      onclick: function () { choose(c); } });
  }
  function renderCards(cards) {
    var track = h("div", { "class": "track", role: "list", tabindex: "0" });
    cards.forEach(function (c, i) {
      var acts = h("div", { "class": "acts" });
      (c.buttons || []).forEach(function (b) { acts.appendChild(choiceButton(b, "")); });
      var url = c.url && safeUrl(c.url);
      if (url) acts.appendChild(h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: t("view") }));
      var img = c.image && safeUrl(c.image);
      track.appendChild(h("div", { "class": "card", role: "listitem", "aria-label": t("cardOf", { i: i + 1, n: cards.length }) }, [
        img ? h("img", { src: img, alt: c.title, loading: "lazy", onload: scroll }) : null,
        h("div", { "class": "body" }, [h("h3", { text: c.title }), c.subtitle ? h("p", { text: c.subtitle }) : null]),
        acts.childNodes.length ? acts : null
      ]));
    });
    var prev = h("button", { "class": "nav prev", type: "button", "aria-label": t("prev"), disabled: true }, [svg(ICON_PREV, 20)]);
    var next = h("button", { "class": "nav next", type: "button", "aria-label": t("next"), disabled: cards.length < 2 }, [svg(ICON_NEXT, 20)]);
    function step(d) { track.scrollBy({ left: d * 240, behavior: "smooth" }); }
    function sync() {
      prev.disabled = track.scrollLeft < 8;
      next.disabled = track.scrollLeft + track.clientWidth >= track.scrollWidth - 8;
    }
    prev.addEventListener("click", function () { step(-1); });
    next.addEventListener("click", function () { step(1); });
    track.addEventListener("scroll", sync, { passive: true });
    track.addEventListener("keydown", function (e) {
      if (e.key === "ArrowRight") { step(1); e.preventDefault(); }
      if (e.key === "ArrowLeft") { step(-1); e.preventDefault(); }
    });
    setTimeout(sync, 50);
    return h("div", { "class": "carousel", role: "group", "aria-roledescription": t("cards"), "aria-label": t("cards") }, [track, prev, next]);
  }
  function renderMedia(m) {
    var url = safeUrl(m.url || "");
    if (!url) return null;
    if (m.kind === "image" || m.kind === "sticker")
      return h("figure", { "class": "media", style: "margin:0" }, [h("img", { src: url, alt: m.caption || "", loading: "lazy", onload: scroll }),
        m.caption ? h("figcaption", { text: m.caption }) : null]);
    return h("div", { "class": "msg bot" }, [h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: "📎 " + (m.caption || t("file")) })]);
  }

  function render(f) {
    if (f.id && shown[f.id]) {
      // Our own message coming back from the server: it is delivered.
      var mine = shown[f.id];
      if (mine.nodeType) { mine.classList.remove("pending"); shown[f.id] = true; }
      return;
    }
    if (f.id) shown[f.id] = true;
    if (f.role === "visitor") {
      retireChips();
      if (f.text) add(h("div", { "class": "msg visitor", text: f.text }));
      return;
    }
    // New chips replace the old ones; a bot message without chips leaves them usable.
    if (f.choices && f.choices.length) retireChips();
    if (f.role === "agent" && f.agent) add(h("div", { "class": "agent-name", text: f.agent }));
    if (/^[0-9a-f]{20}$/.test(f.id || "")) { latestBot = f.id; noteSeen(); }
    if (f.text) add(h("div", { "class": "msg bot" }, [rich(f.text)]));
    (f.media || []).forEach(function (m) { var el = renderMedia(m); if (el) add(el); });
    if (f.cards && f.cards.length) add(renderCards(f.cards));
    if (f.choices && f.choices.length) {
      var row = h("div", { "class": "chips", role: "group", "aria-label": t("choices") },
        f.choices.map(function (c) { return choiceButton(c, "chip"); }));
      chips.push(row);
      add(row);
    }
  }

  // Messages show in seq order. Bot messages that arrive together are revealed one by one,
  // as if typed; history (up to the seq `ready` announced) and the visitor's own show at once.
  var reveal = [];
  var revealing = false;
  var generation = 0;       // bumped when the transcript is cleared: stale reveals are dropped
  function queueFrame(f, instant) {
    if (instant && !revealing) { render(f); return; }
    reveal.push(f);
    if (!revealing) pumpReveal();
  }
  function pumpReveal() {
    var f = reveal.shift();
    if (!f) { revealing = false; syncTyping(); return; }
    revealing = true;
    if (f.role === "visitor" || (f.seq && f.seq <= readySeq)) { render(f); pumpReveal(); return; }
    if (!stopped) { typing.hidden = false; scroll(); }
    var g = generation;
    setTimeout(function () {
      if (g !== generation) return;
      render(f); syncTyping(); pumpReveal();
    }, reveal.length || waitSeq > lastSeq ? 450 : 250);
  }

  // --- connection ------------------------------------------------------------------------------
  var ws = null;
  var ready = false;
  var lastSeq = 0;          // the newest server seq shown (the whole page's life)
  var readySeq = 0;         // frames up to here were history, not news
  var waitSeq = 0;          // an ack said the bot answered up to here: typing until it is shown
  var attempt = 0;
  var retryTimer = null;
  var pingTimer = null, pongTimer = null;
  var pending = [];         // client frames not acked yet, resent after a reconnect
  var wanted = false;       // connect at all (the visitor has an identity or opened the panel)
  // Connections in a row that ended before `ready` (failed handshakes, the server gone):
  // past MAX_FAILS the widget stops (about a minute and a half of backoff) and offers a retry.
  var MAX_FAILS = 8;
  var fails = 0;
  // Why the widget stopped: "" (it did not), "gaveUp" (MAX_FAILS; a retry, the panel opened,
  // a message sent, the browser back online or the tab shown again start over), or final for
  // this page: "refused" (4401, the site's origin is not allowed), "gone" (4404, the channel
  // or tenant was removed; 4400, the server refused our first frame).
  var stopped = "";
  // The server's error frame that explains a close, for the console: the newest error frame
  // of this connection, kept only if no other frame came after it or its code is the close's.
  var lastError = null, afterError = 0;
  var CLOSES = { origin_not_allowed: 4401, gone: 4404, bad_token: 4403, hello_first: 4400, bad_frame: 4400 };

  function focused() { return shadow.activeElement || (shadow === host ? document.activeElement : null); }
  // What to focus when the control that had focus goes (disabled, or replaced): the text box
  // while it takes text, else the status that says why (the Escape handler is the panel's:
  // focus left on <body> would leave a phone's full-screen panel without a way out).
  function refocus() {
    if (!isOpen) return;
    (input.disabled ? status : input).focus();
  }
  function setStatus(kind) {
    var had = status.contains(focused()) && focused() !== status;   // the Retry button, about to go
    status.textContent = "";
    status.classList.toggle("stopped", kind === "stopped");
    if (kind === "down" && wanted) status.textContent = t("reconnecting");
    if (kind === "stopped") {
      status.appendChild(document.createTextNode(t(stopped) + (stopped === "gone" ? " " + t("reload") : "")));
      if (stopped === "gaveUp") status.appendChild(h("button", { type: "button", text: t("retry"),
        onclick: function () { restart(); } }));
    }
    sub.classList.toggle("down", kind !== "up");
    statusText.textContent = kind === "up" ? (cfg.subtitle || t("online")) : kind === "stopped" ? t("offline") : t("connecting");
    if (had) refocus();
  }
  function final() { return stopped !== "" && stopped !== "gaveUp"; }
  function notSent(el) {
    var note = h("div", { "class": "note", text: t("notSent") });
    el.parentNode.insertBefore(note, el.nextSibling);
  }
  function stop(reason, why) {
    stopped = reason;
    clearTimeout(retryTimer);
    waitSeq = 0;
    if (final()) {
      // What was already received is shown at once, not revealed after the stop.
      var rest = reveal; reveal = []; revealing = false; generation++;
      rest.forEach(render);
      // Focus would fall to <body> with the control that has it disabled: keep it in the panel.
      var active = focused();
      var losing = active && (active === input || active === sendBtn ||
        (log.contains(active) && active.matches(".chip, .acts button, .note button")));
      // Nothing typed here can be delivered: say so on what was waiting, and stop taking more.
      pending.forEach(function (p) {
        var el = shown[p.frame.id];
        if (el && el.nodeType) { el.classList.remove("pending"); el.classList.add("failed"); notSent(el); }
      });
      pending = [];
      // A failed message's "Retry" can do nothing now: plain text instead of a dead link.
      Array.prototype.forEach.call(log.querySelectorAll(".note"), function (note) {
        if (note.querySelector("button")) note.textContent = t("notSent");
      });
      input.disabled = true; sendBtn.disabled = true;
      input.placeholder = t(stopped);
      // Chips and card buttons answer the conversation; the carousel's arrows still scroll.
      Array.prototype.forEach.call(log.querySelectorAll(".chip, .acts button"), function (b) { b.disabled = true; });
      setStatus("stopped");
      if (losing) status.focus();
    } else {
      setStatus("stopped");
    }
    syncTyping();
    // For the site's developer: the visitor sees only the sentence above.
    if (window.console) console.warn("causette: " + why);
  }
  function syncTyping() {
    var waiting = pending.some(function (p) { return p.sent; }) || (waitSeq && lastSeq < waitSeq);
    // Stopped, no answer is coming: no typing dots under the message that says so.
    typing.hidden = !!stopped || !(revealing || waiting);
    if (!typing.hidden) scroll();
  }

  var url = base.replace(/^http/, "ws") + "/plugins/webchat/ws?channel=" + encodeURIComponent(channelId);
  function connect() {
    wanted = true;
    if (final()) return;
    if (ws && (ws.readyState === 0 || ws.readyState === 1)) return;
    // Asked for again after giving up (the panel opened, a message): start over, briefly.
    if (stopped === "gaveUp") { restarted(); stopped = ""; }
    clearTimeout(retryTimer);
    setStatus("connecting");
    var sock;
    try { sock = ws = new WebSocket(url); } catch (e) { ws = null; failed(); return; }
    ready = false; lastError = null; afterError = 0;
    // Events of a socket we have since replaced (closing while a new one opened) are ignored.
    sock.onopen = function () {
      if (ws !== sock) return;
      var hello = { type: "hello", last_seq: lastSeq, locale: lang, page: location.href.slice(0, 2000) };
      if (ident && ident.visitor) { hello.visitor = ident.visitor; hello.token = ident.token; }
      ws.send(JSON.stringify(hello));
    };
    sock.onmessage = function (e) {
      if (ws !== sock) return;
      heard(); var f; try { f = JSON.parse(e.data); } catch (x) { return; }
      if (f && f.type === "error") { lastError = f; afterError = 0; } else afterError++;
      onFrame(f);
    };
    sock.onclose = function (e) {
      if (ws !== sock) return;
      var was = ready;
      ready = false; ws = null;
      clearInterval(pingTimer); clearTimeout(pongTimer);
      // Whatever was sent on this socket and not acknowledged is resent on the next one; until
      // then no answer is coming, so no typing dots for it.
      pending.forEach(function (p) { p.sent = false; });
      var why = lastError && (afterError === 0 || CLOSES[lastError.code] === e.code) ? lastError : null;
      var said = why ? " (" + why.code + ": " + why.message + ")" : "";
      if (e.code === 4401) {   // this site may not open the chat: retrying cannot help
        stop("refused", "the gateway refused this page's origin " + location.origin + " for webchat channel \"" +
          channelId + "\" of tenant \"" + CONFIG.tenant + "\" (close 4401 " + (e.reason || "origin not allowed") + ")" + said +
          ": list it in the channel's allowed origins. Not reconnecting.");
        return;
      }
      if (e.code === 4404 || e.code === 4400) {   // the channel is gone, or the server will never take our hello
        stop("gone", (e.code === 4404 ? "webchat channel \"" + channelId + "\" of tenant \"" + CONFIG.tenant + "\" no longer exists"
          : "the gateway refused this widget's first frame; is widget.js an outdated copy?") +
          " (close " + e.code + " " + (e.reason || "") + ")" + said + ". Not reconnecting.");
        return;
      }
      if (e.code === 4403) {   // our identity was refused: start over as a new visitor
        ident = null; put("localStorage", "id", null); put("localStorage", "seen", null); put("sessionStorage", "open", null); openSent = false;
        pending = [];
        lastSeq = 0; clearTranscript();
      }
      if (was) { setStatus("down"); syncTyping(); schedule(); }
      else failed(e.code);
    };
  }
  // A connection that ended before `ready`: retry with backoff, MAX_FAILS times in a row.
  function failed(code) {
    if (++fails >= MAX_FAILS) {
      stop("gaveUp", fails + " connections in a row to " + url + " failed" + (code ? " (last close code " + code + ")" : "") +
        "; stopped retrying until the visitor asks (Retry, opening the panel, sending a message) or the browser comes back online.");
      return;
    }
    setStatus("down");
    syncTyping();
    schedule();
  }
  // A start over asked for (Retry, the browser back online, the tab shown again, the panel
  // opened or a message sent after giving up): backoff from the start, and two attempts before
  // Retry shows again, not another minute and a half of "reconnecting".
  function restarted() {
    attempt = 0;
    fails = Math.min(fails, MAX_FAILS - 2);
  }
  function restart() {
    if (final()) return;
    if (stopped === "gaveUp") stopped = "";
    restarted();
    connect();
  }
  function schedule() {
    if (!wanted) return;
    clearTimeout(retryTimer);
    var delay = Math.min(30000, 500 * Math.pow(2, attempt++)) * (0.5 + Math.random() * 0.5);
    retryTimer = setTimeout(connect, delay);
  }
  function heard() { clearTimeout(pongTimer); }
  function startPing() {
    clearInterval(pingTimer);
    pingTimer = setInterval(function () {
      if (!ws || ws.readyState !== 1) return;
      ws.send('{"type":"ping"}');
      clearTimeout(pongTimer);
      pongTimer = setTimeout(function () { if (ws) ws.close(); }, 10000);  // silent socket: reconnect
    }, 25000);
  }
  function transmit(p) {
    if (ws && ready && ws.readyState === 1) { ws.send(JSON.stringify(p.frame)); p.sent = true; }
  }

  function onFrame(f) {
    switch (f.type) {
      case "ready":
        ready = true; attempt = 0; fails = 0; setStatus("up"); startPing();
        ident = { visitor: f.visitor, token: f.token };
        put("localStorage", "id", JSON.stringify(ident));
        if (!f.resumed) { clearTranscript(); lastSeq = 0; }
        readySeq = f.seq;
        pending.forEach(transmit);
        if (isOpen) sendOpen();
        syncTyping();
        noteSeen();
        break;
      case "message":
        if (f.seq && f.seq <= lastSeq) return;
        if (f.seq) lastSeq = f.seq;
        var history = f.seq && f.seq <= readySeq;
        queueFrame(f, history || f.role === "visitor");
        if (f.role !== "visitor" && !isOpen && !history) { unread++; showBadge(); }
        syncTyping();
        break;
      case "ack":
        pending = pending.filter(function (p) { return p.frame.id !== f.id; });
        if (f.id === get("sessionStorage", "open")) put("sessionStorage", "open", "done");
        if (f.seq > lastSeq) {
          // The answer is on its way through another path; if it never comes, resume.
          var expect = waitSeq = f.seq;
          // (A socket still connecting will resume anyway: closing it would count as a failure.)
          setTimeout(function () { if (lastSeq < expect && waitSeq === expect && ws && ready) { waitSeq = 0; ws.close(); } }, 8000);
        }
        syncTyping();
        break;
      case "error":
        if (f.id) {
          var p = pending.filter(function (q) { return q.frame.id === f.id; })[0];
          if (p && f.retry) { setTimeout(function () { transmit(p); }, 1500 + Math.random() * 1500); }
          else if (p) { pending.splice(pending.indexOf(p), 1); markFailed(p); }
        }
        syncTyping();
        break;
    }
  }

  function clearTranscript() {
    Array.prototype.slice.call(log.childNodes).forEach(function (n) { if (n !== typing) log.removeChild(n); });
    shown = {}; chips = []; greetingEl = null;
    reveal = []; revealing = false; generation++;
    showGreeting();
  }
  function showGreeting() {
    if (cfg.greeting && !greetingEl) { greetingEl = h("div", { "class": "msg bot greeting" }, [rich(cfg.greeting)]); log.insertBefore(greetingEl, log.firstChild); }
  }
  function markFailed(p) {
    var el = shown[p.frame.id];
    if (!el || !el.nodeType) return;
    el.classList.remove("pending"); el.classList.add("failed");
    if (final()) { notSent(el); return; }
    var note = h("div", { "class": "note" }, [h("button", { type: "button", text: t("failed"), onclick: function () {
      note.parentNode && note.parentNode.removeChild(note);
      el.classList.remove("failed"); el.classList.add("pending");
      pending.push(p); transmit(p); syncTyping();
    } })]);
    el.parentNode.insertBefore(note, el.nextSibling);
  }

  function post(frame, echoText) {
    if (final()) {
      if (window.console) console.warn("causette: not sent, this chat is stopped for this page (" + stopped + "): " +
        String(frame.text || frame.type).slice(0, 80));
      return;
    }
    var p = { frame: frame, sent: false };
    if (echoText) {
      retireChips();
      var el = h("div", { "class": "msg visitor pending", text: echoText });
      shown[frame.id] = el;
      add(el);
    }
    pending.push(p);
    connect();
    transmit(p);
    syncTyping();
  }
  function sendText(text) {
    text = String(text || "").trim();
    if (!text) return;
    post({ type: "text", id: uid(), text: text.slice(0, 4000) }, text);
  }
  function choose(c) {
    post({ type: "choice", id: uid(), payload: c.id, text: c.title }, c.title);
    input.focus();   // the clicked chip is gone: keep the keyboard in the panel
  }
  // The opening is announced once per browser session, so a flow's welcome is not repeated
  // on every page the visitor browses.
  // An opening not acknowledged yet (the visitor left the page too soon) is resent on the
  // next page with the same id, which the gateway deduplicates.
  var openSent = false;
  function sendOpen() {
    var id = get("sessionStorage", "open");
    if (id === "done" || openSent) return;
    if (!id) { id = uid(); put("sessionStorage", "open", id); }
    openSent = true;
    post({ type: "open", id: id, page: location.href.slice(0, 2000), ref: ref });
  }

  // Read receipts: the newest bot message the visitor has had in front of them, once each
  // (remembered across pages), recorded by the gateway as a "read" status.
  var latestBot = "", seenTimer = null;
  function noteSeen() {
    clearTimeout(seenTimer);
    seenTimer = setTimeout(function () {
      if (!isOpen || document.visibilityState !== "visible" || !latestBot) return;
      if (latestBot === get("localStorage", "seen") || !ws || !ready || ws.readyState !== 1) return;
      ws.send(JSON.stringify({ type: "seen", id: latestBot }));
      put("localStorage", "seen", latestBot);
    }, 800);
  }

  // --- panel -----------------------------------------------------------------------------------
  function showBadge() {
    badge.hidden = !unread;
    badge.textContent = unread > 9 ? "9+" : String(unread);
    launcher.setAttribute("aria-label", t("chat", { name: title }) + (unread ? " – " + t("unread", { n: unread }) : ""));
  }
  function open() {
    if (isOpen) return;
    isOpen = true;
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    iconChat.style.display = "none"; iconDown.style.display = "";
    root.classList.add("open");
    unread = 0; badge.hidden = true;
    put("sessionStorage", "panel", "open");
    showGreeting();
    connect();
    if (ready) sendOpen();
    noteSeen();
    scroll();
    // Stopped for good, the text box is disabled: the status says why, and Escape still works.
    setTimeout(function () { if (isOpen) (input.disabled ? status : input).focus(); }, 30);
  }
  function close() {
    if (!isOpen) return;
    isOpen = false;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    iconChat.style.display = ""; iconDown.style.display = "none";
    root.classList.remove("open");
    showBadge();
    put("sessionStorage", "panel", null);
    launcher.focus();
  }
  launcher.addEventListener("click", function () { isOpen ? close() : open(); });
  closeBtn.addEventListener("click", close);
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") { e.stopPropagation(); close(); } });
  input.addEventListener("input", function () {
    sendBtn.disabled = !input.value.trim();
    input.style.height = "auto";
    input.style.height = Math.min(120, input.scrollHeight) + "px";
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit ? form.requestSubmit() : submit(e); }
  });
  function submit(e) {
    if (e) e.preventDefault();
    sendText(input.value);
    input.value = ""; input.style.height = "auto"; sendBtn.disabled = true;
    input.focus();
  }
  form.addEventListener("submit", submit);
  window.addEventListener("online", function () { if (wanted && !ws) restart(); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && wanted && !ws) restart();
    if (document.visibilityState === "visible") noteSeen();
  });

  function mount() {
    document.body.appendChild(host);
    // A returning visitor reconnects at once: history, and news while the panel is closed.
    if (ident && ident.visitor) connect();
    if (get("sessionStorage", "panel") === "open" || script.getAttribute("data-open") === "true") open();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);

  window.Causette = { open: open, close: close, toggle: function () { isOpen ? close() : open(); }, send: function (text) { open(); sendText(text); } };
})();
