"""Tenants' patterns run on contacts' free text on the gateway's one event loop: a pattern
that backtracks without end must not stall it. Matches run under a time budget (a match
that runs out of time is no match, and a `pattern.timeout` event), and patterns that would
be huge once compiled are refused."""
import asyncio

import pytest

from causette_tree import TreeEngine
from causette_tree.compiled import PATTERN_TIMEOUT, PATTERN_TURN_BUDGET, compile_flow

HOSTILE = "a" * 40 + "!"


def ask(pattern, **retry):
    return {"format": 1, "id": "f", "start": "q", "nodes": {
        "q": {"type": "input", "text": "Code ?", "validate": "regex", "pattern": pattern,
              "save_as": "code", "next": "ok", **({"retry": retry} if retry else {})},
        "ok": {"type": "end", "text": "Merci {{code}}"}}}


def branch(expr, **kw):
    return {"format": 1, "id": "f", "start": "c", **kw, "nodes": {
        "c": {"type": "condition", "branches": [{"if": expr, "next": "yes"}], "else": "no"},
        "yes": {"type": "end", "text": "oui"},
        "no": {"type": "end", "text": "non"}}}


def problems(flow):
    return [(p.path, p.code) for p in TreeEngine().validate(flow, steps={}) if p.severity == "error"]


async def answer(c, text):
    return await asyncio.wait_for(c.say(text), 5)      # a hang guard, not a measure


async def test_nested_quantifier_answer_is_refused_not_hung(conversation):
    # Hours under re (it doubles with each "a"); regex's repeat guards see it through at once.
    c = conversation(ask("^(a+)+$", text="Des a seulement."))
    await c.start()
    t = await answer(c, HOSTILE)
    assert c.texts(t) == ["Des a seulement."] and c.session.node == "q" and c.session.retries == 1
    assert c.event_types() == ["answer.invalid"]
    t = await answer(c, "aaaa")
    assert t.ended == "completed" and c.session.vars["code"] == "aaaa"


async def test_an_answer_that_runs_out_of_time_is_a_wrong_answer_and_says_why(conversation):
    c = conversation(ask("^(a|aa)+$", text="Des a seulement."))
    await c.start()
    t = await answer(c, HOSTILE)
    assert c.texts(t) == ["Des a seulement."] and c.session.node == "q"
    assert c.event_types() == ["pattern.timeout", "answer.invalid"]
    assert c.events[0].node == "q" and c.events[0].data == {"after": PATTERN_TIMEOUT}
    t = await answer(c, "aaaa")                        # the pattern itself still works
    assert t.ended == "completed" and c.session.vars["code"] == "aaaa"


async def test_a_match_that_runs_out_of_time_is_false_in_a_condition(conversation):
    flow = branch({"any": [{"var": "x", "eq": "z"}, {"var": "x", "matches": "^(a|aa)+$"}]},
                  vars={"x": HOSTILE})
    c = conversation(flow)
    t = await asyncio.wait_for(c.start(), 5)
    assert c.texts(t) == ["non"]
    assert [(e.type, e.node) for e in c.events] == [("pattern.timeout", "c")]


async def test_a_turn_spends_a_bounded_time_on_patterns_however_often_they_run(conversation):
    # A loop repeats a pattern: each match has PATTERN_TIMEOUT, all of a turn's matches
    # PATTERN_TURN_BUDGET; past it, matches are false without running.
    flow = {"format": 1, "id": "f", "start": "each", "vars": {"items": [HOSTILE] * 50, "n": 0},
            "nodes": {"each": {"type": "foreach", "list": "items", "max": 50, "do": "c", "next": "done"},
                      "c": {"type": "condition", "branches": [{"if": {"var": "item", "matches": "^(a|aa)+$"},
                                                               "next": "hit"}], "else": "each"},
                      "hit": {"type": "set", "vars": {"n": 1}, "next": "each"},
                      "done": {"type": "end", "text": "{{n}}"}}}
    c = conversation(flow)
    t = await asyncio.wait_for(c.start(), 5)
    assert t.ended == "completed" and c.texts(t) == ["0"]
    timeouts = c.event_types().count("pattern.timeout")
    # One per PATTERN_TIMEOUT spent; one more when the clock's grain left a sliver of budget.
    assert 1 <= timeouts <= round(PATTERN_TURN_BUDGET / PATTERN_TIMEOUT) + 1


@pytest.mark.parametrize("value,said", [("Oui merci", "oui"), ("non", "non"), (42, "non")])
async def test_conditions_still_match_ignoring_case(conversation, value, said):
    c = conversation(branch({"var": "x", "matches": r"^oui\b"}, vars={"x": value}))
    t = await c.start()
    assert c.texts(t) == [said] and c.event_types() == []


@pytest.mark.parametrize("pattern,good,bad", [
    ("[0-9]{5}", "75011", "7501"),
    (r"^(?P<cp>\d{2}) ?\d{3}$", "75 011", "75-011"),
    ("(?i)oui|yes", "YES", "yess"),
    (r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){4}", "FR76 3000 6000 0112 3456", "FR76 3000"),
])
async def test_inputs_still_match_the_whole_answer(conversation, pattern, good, bad):
    c = conversation(ask(pattern))
    await c.start()
    await c.say(bad)
    assert c.session.node == "q" and c.event_types() == ["answer.invalid"]
    t = await c.say(f"  {good} ")
    assert t.ended == "completed" and c.session.vars["code"] == good


@pytest.mark.parametrize("pattern", ["([0-9]", "a**", r"\p{L}+", "(?<n>a)"])
def test_what_re_refuses_is_still_refused_with_the_same_codes(pattern):
    # \p{L} and (?<n>...) are regex syntax, not re's: flows keep re's syntax.
    (path, code), = problems(ask(pattern))
    assert (path, code) == ("$.nodes.q.pattern", "input.invalid_pattern")
    assert problems(branch({"var": "x", "matches": pattern})) == \
        [("$.nodes.c.branches[0].if.matches", "condition.invalid")]


def test_invalid_pattern_message_is_unchanged():
    p, = TreeEngine().validate(ask("([0-9]"), steps={})
    assert p.message.startswith("not a regular expression: missing ), unterminated subpattern")


@pytest.mark.parametrize("pattern", ["a{4294967294}", "(a{100}){100}", "(?:ab|c){1000}", "(?=x{5000})"])
def test_patterns_too_big_once_compiled_are_refused(pattern):
    # regex writes `x{n}` out n times when it compiles: a{4294967294} filled the memory.
    assert problems(ask(pattern)) == [("$.nodes.q.pattern", "input.invalid_pattern")]
    assert problems(branch({"var": "x", "matches": pattern})) == \
        [("$.nodes.c.branches[0].if.matches", "condition.invalid")]
    assert "repeat counts too large" in TreeEngine().validate(ask(pattern), steps={})[0].message


@pytest.mark.parametrize("pattern", ["a{e<=1}", "(?:oui){1<=e<=2}", "x{2i+1d<=3}"])
def test_fuzzy_braces_are_refused(pattern):
    # Letters for re, fuzzy matching for regex: the same flow would mean two things.
    assert problems(ask(pattern)) == [("$.nodes.q.pattern", "input.invalid_pattern")]
    assert problems(ask(pattern.replace("{", "\\{"))) == []


@pytest.mark.parametrize("pattern", ["a{1000}", r"\d{0,4294967294}", "x*y+z?", ".{1,5000}"])
def test_large_repeat_bounds_that_stay_small_are_accepted(pattern):
    assert problems(ask(pattern)) == []


async def test_a_pattern_refused_after_its_flow_was_published_matches_nothing(conversation):
    # Published under the rules before this budget: the node stays and its retry path runs.
    flow = ask(r"^[\s\S]{1500,}$", text="Encore ?")
    f = compile_flow(flow)
    assert set(f.nodes) == {"q", "ok"}
    c = conversation(flow)
    await c.start()
    t = await answer(c, "x" * 2000)
    assert c.texts(t) == ["Encore ?"] and c.session.node == "q" and c.event_types() == ["answer.invalid"]


async def test_the_turn_budget_spans_every_flow_the_turn_runs():
    # Gotos run several flows in one turn, each through engine.advance with the turn's ctx:
    # they share one budget, or a chain of flows would multiply it.
    from gateway.flows import Context
    from gateway.types import Session
    ctx = Context(tenant="t", channel="c", channel_type="x", contact="u", session=Session())
    flow = compile_flow(branch({"var": "x", "matches": "^(a|aa)+$"}, vars={"x": HOSTILE}))
    engine = TreeEngine()
    for _hop in range(10):
        ctx.session = Session()
        turn = await asyncio.wait_for(engine.advance(ctx, flow, None), 5)
        assert [r.text for r in turn.replies] == ["non"]
    timeouts = [e for e in ctx.events if e.type == "pattern.timeout"]
    assert 1 <= len(timeouts) <= round(PATTERN_TURN_BUDGET / PATTERN_TIMEOUT) + 1


@pytest.mark.parametrize("pattern", ["a{4294967296}", "[[:alpha:]]+", "a\\\\{e<=1}"])
def test_overflowing_ambiguous_or_disguised_patterns_are_refused_not_crashing(pattern):
    # a{2**32}: re raises OverflowError, not re.error; [[:alpha:]]: a set to re, a class to
    # regex; an escaped backslash before a fuzzy brace leaves the brace fuzzy.
    assert problems(ask(pattern)) == [("$.nodes.q.pattern", "input.invalid_pattern")]


def test_flows_without_patterns_run_without_a_clock():
    assert compile_flow(ask("[0-9]+")).patterns
    assert compile_flow(branch({"not": {"all": [{"var": "x", "matches": "a"}]}})).patterns
    assert not compile_flow(branch({"var": "x", "eq": "a"})).patterns


def test_the_regex_validator_alone_treats_a_refused_pattern_as_no_match():
    # Callers outside a compiled flow (a plugin reusing the validators) get the same rule as
    # a running flow: a pattern refused since it was written matches nothing, without raising.
    from types import SimpleNamespace
    from causette_tree import inputs
    assert inputs.regex(" 75011 ", SimpleNamespace(pattern="[0-9]{5}")) == "75011"
    assert inputs.regex("aaa", SimpleNamespace(pattern="a{e<=1}")) is None
    assert inputs.regex("x", SimpleNamespace(pattern="([0-9]")) is None
