"""A conversation driver for the tree engine's tests: a real `gateway.flows.Context` per
turn around one `Session`, and a `run_step` that dispatches to real Step objects the way
the gateway does (Args decoded with msgspec, dry_run in simulations)."""
from __future__ import annotations

from typing import Any

import msgspec
import pytest

from causette_tree import TreeEngine
from gateway.flows import Context, Step, StepResult
from gateway.types import Event, InboundMessage, Session, Turn


class Conversation:
    def __init__(self, flow: dict[str, Any], *, steps: dict[str, Step] | None = None,
                 settings: dict[str, Any] | None = None, contact: str = "+33612345678",
                 locale: str = "", contact_attrs: dict[str, Any] | None = None,
                 dry_run: bool = False, http: Any = None, tenant: str = "demo"):
        self.engine = TreeEngine()
        self.flow = self.engine.compile(flow)
        self.session = Session(flow=flow["id"], version=1, locale=locale,
                               contact=dict(contact_attrs or {}))
        self.steps = steps or {}
        self.settings = settings or {}
        self.contact, self.tenant = contact, tenant
        self.dry_run, self.http = dry_run, http
        self.now = 1_800_000_000.0
        self.events: list[Event] = []
        self.turns: list[Turn] = []
        self.ctx: Context | None = None
        self.calls: list[tuple[str, Any]] = []
        self._n = 0

    async def _run_step(self, ctx: Context, name: str, args: Any) -> StepResult:
        self.calls.append((name, args))
        step = self.steps.get(name)
        if step is None:
            return StepResult(ok=False, error=f"unknown step {name!r}")
        decoded = msgspec.convert(args, step.Args, str_keys=True)
        fn = step.dry_run if ctx.dry_run else step.run
        return await fn(ctx, decoded)

    async def turn(self, text: str | None = None, *, payload: str = "", kind: str = "text",
                   reason: str = "message") -> Turn:
        self._n += 1
        ctx = Context(tenant=self.tenant, channel="web", channel_type="webchat", contact=self.contact,
                      session=self.session, http=self.http, settings=self.settings,
                      run_step=self._run_step, now=self.now, dry_run=self.dry_run)
        ctx.meta["reason"] = reason
        msg = None
        if text is not None or payload or kind != "text":
            msg = InboundMessage(tenant=self.tenant, channel="web", native_id=f"m{self._n}",
                                 contact=self.contact, kind=kind, text=text or "", payload=payload)  # type: ignore[arg-type]
        t = await self.engine.advance(ctx, self.flow, msg)
        self.ctx = ctx
        self.events.extend(ctx.events)
        self.turns.append(t)
        return t

    async def start(self) -> Turn:
        return await self.turn(None, reason="start")

    async def say(self, text: str = "", payload: str = "") -> Turn:
        return await self.turn(text, payload=payload)

    async def timer(self) -> Turn:
        self.now += self.turns[-1].wait if self.turns and self.turns[-1].wait else 60
        return await self.turn(None, reason="timer")

    def texts(self, turn: Turn | None = None) -> list[str]:
        t = turn or self.turns[-1]
        return [r.text for r in t.replies]

    def event_types(self) -> list[str]:
        return [e.type for e in self.events]


@pytest.fixture
def conversation():
    return Conversation


class EchoStep(Step):
    """A step that answers what it is told to (a real Step, used by flows in tests)."""
    name = "test.echo"

    class Args(msgspec.Struct, forbid_unknown_fields=True):
        ok: bool = True
        vars: dict[str, Any] = {}
        branch: str = ""
        say: str = ""

    async def run(self, ctx, args):
        from gateway.types import Reply
        return StepResult(ok=args.ok, vars=args.vars, branch=args.branch,
                          replies=[Reply(text=args.say)] if args.say else [],
                          error="" if args.ok else "told to fail")

    async def dry_run(self, ctx, args):
        return StepResult(ok=True, vars={"dry": True})


@pytest.fixture
def echo_step():
    return EchoStep()
