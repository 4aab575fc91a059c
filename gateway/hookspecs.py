"""Every hook a Causette plugin can implement.

Registration hooks run once at start-up and their results are cached. Chain hooks run per
message, only for the plugins the tenant has enabled, in pluggy's order (tryfirst/trylast);
implementations may be `async def` and may accept any subset of the arguments.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from aiohttp import web

    from .channels import Channel
    from .flows import Context, FlowEngine, Step
    from .types import Event, InboundMessage, Reply

hookspec = pluggy.HookspecMarker("causette")
hookimpl = pluggy.HookimplMarker("causette")

# --------------------------------------------------------------------------------------
# Registration hooks (once, at start-up)
# --------------------------------------------------------------------------------------


@hookspec
def register_channels() -> list[type[Channel]]:
    """Called at start-up. Return the channel classes this plugin provides (subclasses of
    `gateway.channels.Channel`, each with its `type`, `Settings`, `secrets`, `capabilities`)."""


@hookspec
def register_flow_engines() -> list[FlowEngine]:
    """Called at start-up. Return flow engine objects; a flow picks one by its `engine` name."""


@hookspec
def register_steps() -> list[Step]:
    """Called at start-up. Return step objects that flows can call by `name`
    (`{"type": "step", "step": "http.request", "with": {...}}`)."""


@hookspec
def register_routes() -> list[web.RouteDef]:
    """Called at start-up. Return aiohttp route definitions. A relative path is mounted under
    `/t/{tenant}/plugins/{plugin}/`; a path starting with `/` is mounted under `/t/{tenant}`.
    Handlers read the tenant from `request.match_info["tenant"]` and get a 404 for a tenant
    that has not enabled the plugin."""


# --------------------------------------------------------------------------------------
# Chain hooks (per message, the tenant's enabled plugins only)
# --------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def inbound_message(ctx: Context, message: InboundMessage) -> list[Reply] | None:
    """Called for each inbound message after the session is loaded, before the flow engine.
    Return a list of replies to answer and stop the chain (the flow does not run); return
    None to go on. Opt-out keywords, agent keywords, rate limits, language detection."""


@hookspec
def outbound_message(ctx: Context, reply: Reply) -> Reply | bool | None:
    """Called for each reply before it is rendered, in chain order. Return a new Reply to
    replace it (the next plugin sees the new one), False to hold it back, None to keep it."""


@hookspec
def conversation_event(ctx: Context, event: Event) -> None:
    """Called after each event of a turn is recorded (message in/out, flow started/ended,
    handoff, step failed...). The return value is ignored; failures never touch the reply."""


@hookspec
def handoff_requested(ctx: Context, handoff: dict[str, Any]) -> None:
    """Called when a flow hands the conversation to a human (`{"queue", "reason"}`), once the
    turn's replies (the handoff text) have been handed to the channel: sent, or kept for a
    later try when the provider asked (those go after it); a webhook's inline answer leaves
    just after. Helpdesk plugins open a ticket, channel plugins pass the thread to their
    provider's inbox; the bot stays silent until `handoff_released`."""


@hookspec
def handoff_released(ctx: Context, handoff: dict[str, Any]) -> None:
    """Called when an agent hands the conversation back to the bot (`{"queue", "agent"}`),
    within that release's turn: what it records with `ctx.record` is saved with the turn."""
