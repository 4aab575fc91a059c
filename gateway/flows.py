"""The flow-engine and step interfaces, and the context they run in."""
from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any, ClassVar, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from .types import Event, InboundMessage, Problem, Reply, Session, Turn

if TYPE_CHECKING:
    import aiohttp
    from .channels import Capabilities


def _parse_time(value: Any, tz: str) -> float | None:
    """An ISO 8601 instant; without an offset it is read in the tenant's time zone."""
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if when.tzinfo is None:
        try:
            when = when.replace(tzinfo=ZoneInfo(tz))
        except (ZoneInfoNotFoundError, ValueError):
            when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


Period = tuple[float | None, float | None, Mapping[str, Any]]


def active_period(definition: Mapping[str, Any], tz: str) -> Period | None:
    """A flow's `active` window as (from, until, the `active` object), instants in seconds
    (None: open-ended); None when the flow is always on."""
    active = definition.get("active") or None
    if not active:
        return None
    return _parse_time(active.get("from"), tz), _parse_time(active.get("until"), tz), active


class StepResult(msgspec.Struct, omit_defaults=True):
    """What a step returns: variables to set, replies to send, and success or failure."""
    ok: bool = True
    vars: dict[str, Any] = {}
    replies: list[Reply] = []
    error: str = ""
    branch: str = ""          # optional named outcome a node may route on


class NoArgs(msgspec.Struct, forbid_unknown_fields=True):
    pass


class Step:
    """A step type that flows call with {"type": "step", "step": name, "with": {...}}.

    `Args` validates the node's `with` object (after template substitution at run time,
    and as written at publish time). `Settings` is the tenant's settings of the plugin.
    """
    name: ClassVar[str] = ""      # required: what flows call it by, e.g. "crm.lookup"
    Args: ClassVar[type[msgspec.Struct]] = NoArgs
    description: ClassVar[str] = ""

    async def run(self, ctx: "Context", args: Any) -> StepResult:
        raise NotImplementedError

    async def dry_run(self, ctx: "Context", args: Any) -> StepResult:
        """Called instead of `run` in simulations; must have no side effects."""
        return StepResult(ok=True)


class FlowEngine:
    """Runs one kind of flow. A flow's JSON names its engine (`"engine": "tree"`)."""
    name: ClassVar[str] = ""

    def validate(self, flow: Mapping[str, Any], *, steps: Mapping[str, Step],
                 channels: "Mapping[str, Capabilities]" = {}) -> list[Problem]:
        """Every problem of the flow at once, with JSON paths; errors block publishing.
        An engine may also take `flows` (the tenant's flow ids, a set) and `definitions`
        (their published definitions by id, None for one never published): the gateway
        passes each keyword that the signature names."""
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        """JSON Schema of this engine's flow format (generated from its Structs)."""
        return {}

    def graph(self, flow: Mapping[str, Any]) -> dict[str, str]:
        """Pictures of the flow: {"mermaid": text, "svg": markup}."""
        return {}

    def compile(self, flow: Mapping[str, Any]) -> Any:
        """Prepare a validated flow for running; called once per distinct definition and cached.
        The result may depend on the definition only: flows of equal definitions (in one
        tenant or many) share it, so `advance` must never change it per tenant or contact."""
        return flow

    async def advance(self, ctx: "Context", flow: Any, message: InboundMessage | None) -> Turn:
        """Move the conversation in `ctx.session` forward. `session.node == ""` means start
        at the flow's start node; `message` is None when a flow is started without a message
        (campaign, timer). Mutates ctx.session; returns replies, events, handoff, end."""
        raise NotImplementedError


class Context:
    """What a hook, a step or an engine gets for one conversation turn."""
    __slots__ = ("tenant", "tenant_config", "channel", "channel_type", "contact", "session",
                 "http", "now", "dry_run", "events", "_settings", "_run_step", "meta")

    def __init__(self, *, tenant: str, channel: str, channel_type: str, contact: str,
                 session: Session, http: "aiohttp.ClientSession | None" = None,
                 settings: Mapping[str, Any] | None = None, tenant_config: Any = None,
                 run_step: Any = None, now: float | None = None, dry_run: bool = False):
        self.tenant = tenant
        self.tenant_config = tenant_config
        self.channel = channel
        self.channel_type = channel_type
        self.contact = contact
        self.session = session
        self.http = http
        self.now = time.time() if now is None else now
        self.dry_run = dry_run
        self.events: list[Event] = []
        # `is None`, not truthiness: that would read the tenant's dictionary on every turn.
        self._settings = {} if settings is None else settings
        self._run_step = run_step
        self.meta: dict[str, Any] = {}

    def settings(self, plugin: str) -> Any:
        """The tenant's decoded settings for `plugin` (its Settings Struct), or None."""
        return self._settings.get(plugin)

    def record(self, type: str, **data: Any) -> Event:
        """Record an event of this conversation; it reaches the store after the turn."""
        s = self.session
        variant = s.extra.get("variant")
        if variant and "variant" not in data:
            # Experiments compare variants on outcomes: every event after the split carries it.
            data["variant"] = variant
        ev = Event(type=type, tenant=self.tenant, channel=self.channel, contact=self.contact,
                   ts=self.now, flow=s.flow, version=s.version, node=s.node, data=data)
        self.events.append(ev)
        return ev

    async def run_step(self, name: str, args: Mapping[str, Any]) -> StepResult:
        """Call a registered step under the gateway's timeout and circuit breaker."""
        if self._run_step is None:
            return StepResult(ok=False, error=f"no step runner for {name}")
        return await self._run_step(self, name, args)
