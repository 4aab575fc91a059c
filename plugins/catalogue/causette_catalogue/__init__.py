"""A tenant's product feed: products kept in the plugin's settings, queried by flows.

`GET /t/{tenant}/catalogue.json?category=women&budget=low&limit=3` answers
`{"count": n, "products": [...]}`, best discounts first. Flows reach it with the
`http.request` step (the demo bot does); brands with their own feed point that step at it
instead.
"""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from gateway.routes import route_tenant
from gateway.hookspecs import hookimpl

BUDGETS = {"low": (0, 50), "mid": (50, 150), "high": (150, float("inf"))}


class Product(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    sku: str
    name: str
    category: str
    price: Annotated[float, msgspec.Meta(ge=0)]
    was: Annotated[float, msgspec.Meta(ge=0)] = 0
    url: str = ""
    image: str = ""


class Settings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    products: list[Product] = []
    currency: Literal["EUR", "USD", "GBP", "CHF"] = "EUR"


def search(products: list[Product], category: str = "", budget: str = "", limit: int = 5) -> list[Product]:
    lo, hi = BUDGETS.get(budget, (0, float("inf")))
    hits = [p for p in products
            if (not category or p.category == category) and lo <= p.price < hi]
    hits.sort(key=lambda p: (-(p.was - p.price) / p.was if p.was else 0, p.price))
    return hits[:max(0, min(limit, 50))]


async def catalogue(request: web.Request) -> web.Response:
    settings = route_tenant(request).settings
    if not isinstance(settings, Settings):     # stored settings that no longer decode
        settings = Settings()
    try:
        limit = int(request.query.get("limit", "5"))
    except ValueError:
        return web.json_response({"title": "limit must be a number", "status": 400}, status=400,
                                 content_type="application/problem+json")
    hits = search(settings.products, request.query.get("category", ""),
                  request.query.get("budget", ""), limit)
    return web.Response(body=msgspec.json.encode({"count": len(hits), "currency": settings.currency,
                                                  "products": hits}),
                        content_type="application/json")


@hookimpl
def register_routes():
    return [web.get("/catalogue.json", catalogue)]
