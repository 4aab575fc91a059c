"""`TreeEngine`: the FlowEngine of decision-tree flows (design section 5)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from gateway.flows import FlowEngine, Step
from gateway.types import InboundMessage, Problem, Turn

from . import model
from .compiled import Compiled, compile_flow
from .runner import Run

if TYPE_CHECKING:
    from gateway.channels import Capabilities
    from gateway.flows import Context


class TreeEngine(FlowEngine):
    name = "tree"

    def validate(self, flow: Mapping[str, Any], *, steps: Mapping[str, Step],
                 channels: "Mapping[str, Capabilities]" = {},
                 flows: "set[str] | frozenset[str] | None" = None) -> list[Problem]:
        """Every problem at once. `flows`, when given, is the set of the tenant's flow ids
        that a `goto` may name (unknown ones are errors); None skips that check."""
        from .validate import validate
        return validate(flow, steps=steps, channels=channels, flows=flows)

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
        return await Run(f, ctx).advance(message)
