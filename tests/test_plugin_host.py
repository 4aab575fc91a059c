"""The plugin host: discovery, per-tenant chains in pluggy order, timeouts, isolation, breaker."""
import asyncio

import pytest

from gateway.flows import Context, Step, StepResult
from gateway.hookspecs import hookimpl
from gateway.plugins import Breaker, PluginError, PluginHost
from gateway.types import InboundMessage, Reply, Session



def ctx(tenant="acme"):
    return Context(tenant=tenant, channel="web", channel_type="webchat", contact="c1", session=Session())


def msg(tenant="acme", text="hi"):
    return InboundMessage(tenant=tenant, channel="web", native_id="m1", contact="c1", text=text)


class First:
    @hookimpl(tryfirst=True)
    def inbound_message(self, message):
        return [Reply(text="first:" + message.text)] if message.text == "stop" else None


class Middle:
    @hookimpl
    async def inbound_message(self, ctx, message):
        ctx.meta.setdefault("seen", []).append("middle")
        return None


class Last:
    @hookimpl(trylast=True)
    async def inbound_message(self, ctx):
        ctx.meta.setdefault("seen", []).append("last")
        return [Reply(text="last")]


class Raises:
    @hookimpl(tryfirst=True)
    async def inbound_message(self, ctx):
        raise RuntimeError("boom")


class Hangs:
    @hookimpl(tryfirst=True)
    async def inbound_message(self, ctx):
        await asyncio.sleep(60)


def host(*plugins, timeout=0.2, breaker=None):
    return PluginHost(entrypoints=False, extra=plugins, timeout=timeout, breaker=breaker)


async def test_chain_runs_in_pluggy_order_and_stops_at_first_answer():
    h = host(("last", Last()), ("middle", Middle()), ("first", First()))
    enabled = frozenset({"first", "middle", "last"})
    c = ctx()
    res = await h.call_first("inbound_message", "acme", enabled, ctx=c, message=msg())
    assert [r.text for r in res] == ["last"]
    assert c.meta["seen"] == ["middle", "last"]
    res = await h.call_first("inbound_message", "acme", enabled, ctx=ctx(), message=msg(text="stop"))
    assert res[0].text == "first:stop"


async def test_only_the_tenants_enabled_plugins_run():
    h = host(("middle", Middle()), ("last", Last()))
    c = ctx()
    res = await h.call_first("inbound_message", "acme", frozenset({"middle"}), ctx=c, message=msg())
    assert res is None and c.meta["seen"] == ["middle"]


async def test_raising_and_hanging_plugins_are_isolated_and_counted():
    h = host(("raises", Raises()), ("hangs", Hangs()), ("last", Last()))
    enabled = frozenset({"raises", "hangs", "last"})
    res = await h.call_first("inbound_message", "acme", enabled, ctx=ctx(), message=msg())
    assert res[0].text == "last"
    assert h.failures[("acme", "raises")] == 1 and h.failures[("acme", "hangs")] == 1


class Waits:
    """Awaits several times before answering or failing: the plugin call resumes it."""
    def __init__(self, fail=False):
        self.fail = fail

    @hookimpl
    async def inbound_message(self, ctx):
        for i in range(3):
            await asyncio.sleep(0.001 * i)
            ctx.meta.setdefault("steps", []).append(i)
        if self.fail:
            raise ValueError("late failure")
        return [Reply(text="waited")]


class HangsLater:
    @hookimpl
    async def inbound_message(self, ctx):
        await asyncio.sleep(0)
        try:
            await asyncio.sleep(60)
        finally:
            ctx.meta["cleaned_up"] = True


async def test_a_plugin_that_waits_runs_to_its_answer_or_its_failure_or_its_timeout():
    enabled = frozenset({"p"})
    c = ctx()
    res = await host(("p", Waits())).call_first("inbound_message", "acme", enabled, ctx=c, message=msg())
    assert res[0].text == "waited" and c.meta["steps"] == [0, 1, 2]
    h = host(("p", Waits(fail=True)))
    assert await h.call_first("inbound_message", "acme", enabled, ctx=ctx(), message=msg()) is None
    assert h.failures[("acme", "p")] == 1
    h, c = host(("p", HangsLater()), timeout=0.05), ctx()
    assert await h.call_first("inbound_message", "acme", enabled, ctx=c, message=msg()) is None
    assert h.failures[("acme", "p")] == 1 and c.meta["cleaned_up"]     # cancelled inside


async def test_cancelling_the_turn_cancels_the_plugin_it_waits_on():
    c = ctx()
    h = host(("p", HangsLater()), timeout=30)
    task = asyncio.ensure_future(h.call_first("inbound_message", "acme", frozenset({"p"}), ctx=c,
                                              message=msg()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert c.meta["cleaned_up"]


async def test_breaker_switches_a_failing_plugin_off_for_that_tenant_only():
    h = host(("raises", Raises()), breaker=Breaker(threshold=3, window=60, cooldown=60))
    on = frozenset({"raises"})
    for _ in range(3):
        await h.call_first("inbound_message", "acme", on, ctx=ctx(), message=msg())
    assert h.breaker.is_open("acme", "raises")
    await h.call_first("inbound_message", "acme", on, ctx=ctx(), message=msg())
    assert h.failures[("acme", "raises")] == 3          # not even called while open
    assert not h.breaker.is_open("other", "raises")
    await h.call_first("inbound_message", "other", on, ctx=ctx("other"), message=msg("other"))
    assert h.failures[("other", "raises")] == 1


class Echo(Step):
    name = "test.echo"

    async def run(self, ctx, args):
        return StepResult(vars={"echo": "live"})

    async def dry_run(self, ctx, args):
        return StepResult(vars={"echo": "dry"})


class Steps:
    @hookimpl
    def register_steps(self):
        return [Echo()]


async def test_steps_dry_run_and_enabled_check():
    h = host(("steps", Steps()))
    c = ctx()
    assert (await h.run_step(c, "test.echo", {}, frozenset({"steps"}))).vars == {"echo": "live"}
    c.dry_run = True
    assert (await h.run_step(c, "test.echo", {}, frozenset({"steps"}))).vars == {"echo": "dry"}
    off = await h.run_step(c, "test.echo", {}, frozenset())
    assert not off.ok and "not enabled" in off.error
    bad = await h.run_step(c, "test.echo", {"x": 1}, frozenset({"steps"}))
    assert not bad.ok and "invalid arguments" in bad.error
    assert h.plugins[0].registers == {"step": ["test.echo"]}


class Unkeepable(Step):
    """Misbehaves in the ways a step author can: returns a value the session cannot hold,
    raises, hangs."""
    name = "test.unkeepable"

    async def run(self, ctx, args):
        how = ctx.session.vars.get("how")
        if how == "huge":
            return StepResult(vars={"points": 2 ** 70})
        if how == "raise":
            raise RuntimeError("CRM down")
        await asyncio.sleep(5)


class Bad:
    @hookimpl
    def register_steps(self):
        return [Unkeepable()]


async def test_a_failed_step_says_why():
    h = host(("bad", Bad()), breaker=Breaker(threshold=3, window=60, cooldown=60))
    on = frozenset({"bad"})
    why = {}
    for how in ("huge", "raise", "hang"):
        c = ctx()
        c.session.vars["how"] = how
        res = await h.run_step(c, "test.unkeepable", {}, on)
        assert not res.ok
        why[how] = res.error
    assert why["huge"].startswith("step test.unkeepable returned variables that cannot be kept")
    assert why["raise"] == "step test.unkeepable raised RuntimeError: CRM down"
    assert why["hang"] == "step test.unkeepable timed out"
    c = ctx()
    c.session.vars["how"] = "raise"
    await h.run_step(c, "test.unkeepable", {}, on)        # the third failure opens the breaker
    off = await h.run_step(c, "test.unkeepable", {}, on)
    assert off.error == "step test.unkeepable switched off for a while after repeated failures"


def test_two_plugins_registering_one_name_is_an_error():
    with pytest.raises(PluginError):
        host(("a", Steps()), ("b", Steps()))


def test_unknown_hook_name_is_refused():
    class Typo:
        @hookimpl
        def inbound_mesage(self, ctx):
            return None
    with pytest.raises(Exception):
        host(("typo", Typo()))


class Nameless(Step):
    async def run(self, ctx, args):
        return StepResult()


@pytest.mark.parametrize("returned, says", [
    (Nameless(), "its `name` is empty: set the class attribute `name = \"...\"`"),
    (Nameless, "a class, not an instance: return Nameless()"),
    ("test.echo", "not an instance of gateway.flows.Step"),
])
def test_an_invalid_step_registration_says_what_is_wrong(returned, says):
    class Broken:
        @hookimpl
        def register_steps(self):
            return [returned]
    with pytest.raises(PluginError) as err:
        host(("broken", Broken()))
    assert str(err.value).startswith("broken: register_steps returned ")
    assert str(err.value).endswith(says)
