"""Causette channel plugin: Facebook Messenger (docs/channels/messenger.md).

Besides the channel, the plugin implements the handoff hooks: when a tenant enables the
`messenger` plugin, a flow's handoff passes the Messenger thread to the instance's
`handover_app_id` (Meta's Page Inbox by default) and a release takes it back, so the human
agent answers in the inbox while the bot stays silent. Its `outbound_message` hook tags a
human agent's late reply (24 h to 7 days) with HUMAN_AGENT.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import msgspec

from gateway.hookspecs import hookimpl

# No module-level `Settings`: the plugin host would take it for per-tenant plugin settings.
# A channel instance's settings are `MessengerChannel.Settings`.
from .channel import HUMAN_AGENT_WINDOW, WINDOW, MessengerChannel

__all__ = ["MessengerChannel", "channel_for"]

log = logging.getLogger("causette.messenger")


@hookimpl
def register_channels():
    return [MessengerChannel]


def channel_for(ctx: Any) -> MessengerChannel | None:
    """The Messenger channel instance of a conversation, built from the tenant's snapshot."""
    if getattr(ctx, "channel_type", "") != MessengerChannel.type:
        return None
    snap = ctx.tenant_config
    for cfg in getattr(snap, "channels", ()):
        if cfg.id == ctx.channel and cfg.type == MessengerChannel.type:
            settings = msgspec.convert(cfg.settings, MessengerChannel.Settings)
            return MessengerChannel(ctx.tenant, cfg.id, settings, ctx.http)
    return None


@hookimpl
async def handoff_requested(ctx, handoff):
    ch = channel_for(ctx)
    if ch is None or not ch.settings.handover_app_id:
        return
    meta = json.dumps({"queue": handoff.get("queue", ""), "reason": handoff.get("reason", "")},
                      ensure_ascii=False)
    res = await ch.pass_thread_control(ctx.contact, metadata=meta)
    ctx.record("handover.passed" if res.status == "sent" else "handover.failed",
               target=ch.settings.handover_app_id, code=res.code, detail=res.detail)
    return


@hookimpl
async def handoff_released(ctx, handoff):
    ch = channel_for(ctx)
    if ch is None or not ch.settings.handover_app_id:
        return
    if handoff.get("agent") == f"{ch.type}:inbox":
        return        # the inbox passed the thread back itself: the bot's app owns it already
    res = await ch.take_thread_control(ctx.contact, metadata=json.dumps(
        {"agent": handoff.get("agent", "")}, ensure_ascii=False))
    ctx.record("handover.taken" if res.status == "sent" else "handover.failed",
               code=res.code, detail=res.detail)
    return


@hookimpl
def outbound_message(ctx, reply):
    """A human agent's reply between 24 hours and 7 days after the customer's last message
    gets Messenger's HUMAN_AGENT tag, so the gateway sends it instead of holding it."""
    if not reply.from_agent or reply.tag or reply.template:
        return None
    ch = channel_for(ctx)
    if ch is None or not ch.settings.human_agent_tag:
        return None
    last = ctx.session.last_in
    if last and WINDOW < ctx.now - last <= HUMAN_AGENT_WINDOW:
        return msgspec.structs.replace(reply, tag="HUMAN_AGENT")
    return None
