"""Conversations for human agents: look at one, take it over, answer, hand it back.

A conversation is a contact on a channel instance: `/conversations/{channel}/{contact}`
(the contact's address URL-encoded). Agent actions run as turns of that conversation, so
they are ordered with the contact's own messages and go through the same rules (window,
stopped contact, outbound chain)."""
from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from ..appkeys import PIPELINE, REGISTRY, STATE
from ..console import ConsoleChannel
from ..problems import ProblemError, invalid, not_found
from ..types import Problem
from .http import json_response, principal, read_json, store
from .wire import AgentAction, ConversationOut


def _ids(request: web.Request) -> tuple[str, str, str]:
    m = request.match_info
    return m["tenant"], m["channel"], m["contact"]


def _services(request: web.Request) -> tuple[Any, Any, Any]:
    cfg = request.config_dict
    if PIPELINE not in cfg:
        raise ProblemError(503, "Service Unavailable", "conversations need the gateway's runtime")
    return cfg[REGISTRY], cfg[PIPELINE], cfg[STATE]


async def _channel(request: web.Request) -> tuple[Any, Any]:
    registry, _, _ = _services(request)
    tenant, channel, _ = _ids(request)
    rt = await registry.get(tenant)
    ch = rt.channels.get(channel) if rt else None
    if ch is None and rt is not None and channel == ConsoleChannel.type:
        raise ProblemError(409, "Conflict", "a conversation of `causette chat` belongs to its "
                           "terminal: it can be read here, not taken over or answered")
    if ch is None:
        raise not_found("channel")
    return rt, ch


async def _out(request: web.Request, events: list | None = None) -> ConversationOut:
    _, _, state = _services(request)
    tenant, channel, contact = _ids(request)
    session = await state.load_session(tenant, channel, contact)
    if events is None:
        events = [e for e in await store(request).list_events(tenant, contact=contact, limit=200)
                  if e.channel == channel]
    return ConversationOut(channel=channel, contact=contact,
                           session=msgspec.structs.asdict(session) if session else None,
                           events=events)


async def get_conversation(request: web.Request) -> web.Response:
    tenant, channel, _ = _ids(request)
    if channel == ConsoleChannel.type:
        # `causette chat` talks to the tenant's bot on a channel of its own, configured
        # nowhere: its conversations can be read, not acted on (the terminal holds them).
        registry, _, _ = _services(request)
        if await registry.get(tenant) is None:
            raise not_found("channel")
    else:
        await _channel(request)
    out = await _out(request)
    if out.session is None and not out.events:
        # A mistyped contact must not read as an empty conversation.
        raise not_found("conversation")
    return json_response(out)


async def _act(request: web.Request, action: str) -> web.Response:
    rt, ch = await _channel(request)
    _, pipeline, _ = _services(request)
    body = await read_json(request, AgentAction, optional=action != "reply")
    if action == "reply" and not body.text.strip():
        raise invalid([Problem(path="$.text", code="constraint", message="a reply needs a text (not only blanks)")])
    agent = body.agent or principal(request).name or principal(request).id
    events = await pipeline.agent(rt, ch, _ids(request)[2], action=action, agent=agent,
                                  text=body.text)
    return json_response(await _out(request, events))


async def takeover(request: web.Request) -> web.Response:
    return await _act(request, "takeover")


async def reply(request: web.Request) -> web.Response:
    return await _act(request, "reply")


async def release(request: web.Request) -> web.Response:
    return await _act(request, "release")
