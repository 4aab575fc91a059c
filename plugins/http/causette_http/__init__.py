"""Causette step plugin `http`: the `http.request` step calls a tenant's own HTTP API.

    {"type": "step", "step": "http.request",
     "with": {"method": "GET", "url": "https://shop.example/api/offers",
              "query": {"category": "{{category}}"},
              "save": {"products": "$.items", "count": "$.total"}},
     "next": "show", "on_error": "sorry", "branches": {"404": "none"}}

Only the hosts a tenant lists in its settings (`allowed_hosts`) can be called: a flow
author must not be able to reach the gateway's own network (SSRF). Redirects are not
followed for the same reason.
"""
from __future__ import annotations

from gateway.hookspecs import hookimpl

from .step import Args, HttpRequest, Settings, extract

__all__ = ["Args", "HttpRequest", "Settings", "extract"]


@hookimpl
def register_steps():
    return [HttpRequest()]
