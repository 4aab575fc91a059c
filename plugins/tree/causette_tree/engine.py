"""`TreeEngine`: the FlowEngine of decision-tree flows (design section 5)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Collection, Mapping

from gateway.flows import FlowEngine, Step
from gateway.types import InboundMessage, Problem, Turn

from . import model
from .compiled import CLOCK, Compiled, PatternClock, compile_flow
from .runner import Run

if TYPE_CHECKING:
    from gateway.channels import Capabilities
    from gateway.flows import Context


class TreeEngine(FlowEngine):
    name = "tree"

    def validate(self, flow: Mapping[str, Any], *, steps: Mapping[str, Step],
                 channels: "Mapping[str, Capabilities]" = {},
                 flows: "Collection[str] | None" = None,
                 definitions: "Mapping[str, Any] | None" = None,
                 disabled: "Mapping[str, str]" = {}) -> list[Problem]:
        """Every problem at once. `flows`, when given, is the set of the tenant's flow ids
        that a `goto` may name (unknown ones are errors); None skips that check.
        `definitions` maps those ids to their published definitions (None for a flow never
        published): gotos that come back to this flow in the same turn are reported.
        `disabled`: steps of installed plugins the tenant has not enabled, with their plugin."""
        from .validate import validate
        return validate(flow, steps=steps, channels=channels, flows=flows, definitions=definitions,
                        disabled=disabled)

    def schema(self) -> dict[str, Any]:
        return model.schema()

    def graph(self, flow: Mapping[str, Any]) -> dict[str, str]:
        from .graph import graph
        return graph(flow)

    def compile(self, flow: Mapping[str, Any]) -> Compiled:
        return compile_flow(flow)

    async def advance(self, ctx: "Context", flow: Any, message: InboundMessage | None) -> Turn:
        f = flow if isinstance(flow, Compiled) else compile_flow(flow)
        # Context.record adds session.extra["variant"] (set by split nodes) to every event.
        if not f.patterns:
            return await Run(f, ctx).advance(message)
        # One clock for the whole turn: a turn may advance several flows (gotos) in a row.
        clock = ctx.meta.get("pattern_clock")
        if clock is None:
            clock = ctx.meta["pattern_clock"] = PatternClock(ctx)
        token = CLOCK.set(clock)
        try:
            return await Run(f, ctx).advance(message)
        finally:
            CLOCK.reset(token)
