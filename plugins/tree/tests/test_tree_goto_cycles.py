"""A goto to another flow starts it in the same turn: flows whose starts send the contact
round from one to the other without waiting for an answer are refused at publish, given
the tenant's published definitions (`flows` as a mapping)."""
import pytest

from causette_tree import TreeEngine

CHOICE = {"type": "choice", "text": "Encore ?", "choices": [{"id": "o", "title": "Oui", "next": "go"}]}
INPUT = {"type": "input", "text": "Nom ?", "save_as": "name", "next": "go"}


def flow(fid, target, first=None):
    """`fid`: says hello, then `first` (a node going on to `go`) when given, then goes to `target`."""
    nodes = {"hi": {"type": "message", "text": f"Ici {fid}", "next": "ask" if first else "go"}}
    if first:
        nodes["ask"] = first
    nodes["go"] = {"type": "goto", "flow": target}
    return {"format": 1, "id": fid, "start": "hi", "nodes": nodes}


def errors(f, flows):
    return [p for p in TreeEngine().validate(f, steps={}, flows=flows) if p.severity == "error"]


def test_two_flows_that_goto_each_other_without_waiting():
    a, b = flow("a", "b"), flow("b", "a")
    p, = errors(a, {"a": a, "b": b})
    assert (p.path, p.code) == ("$.nodes.go", "flow.loop_without_input")
    assert "a → b → a" in p.message


def test_a_longer_way_back_through_a_condition_is_found_and_shown():
    c = flow("c", "a", first={"type": "condition", "branches": [{"if": {"var": "x", "eq": 1}, "next": "go"}],
                              "else": "go"})
    a, b = flow("a", "b"), flow("b", "c")
    p, = errors(a, {"a": None, "b": b, "c": c})
    assert (p.path, p.code) == ("$.nodes.go", "flow.loop_without_input")
    assert "a → b → c → a" in p.message


@pytest.mark.parametrize("where", ["here", "there"])
@pytest.mark.parametrize("wait", [CHOICE, INPUT], ids=["choice", "input"])
def test_a_node_that_waits_on_the_way_breaks_the_loop(where, wait):
    a = flow("a", "b", first=wait if where == "here" else None)
    b = flow("b", "a", first=wait if where == "there" else None)
    assert errors(a, {"a": a, "b": b}) == []


def test_a_goto_to_a_flow_that_does_not_come_back():
    a, b = flow("a", "b"), {"format": 1, "id": "b", "start": "bye", "nodes": {"bye": {"type": "end"}}}
    assert errors(a, {"a": a, "b": b}) == []


def test_a_loop_between_other_flows_is_theirs_to_report():
    # b and c go round without a; a's publish is not the place (b's or c's is).
    a, b, c = flow("a", "b"), flow("b", "c"), flow("c", "b")
    assert errors(a, {"a": a, "b": b, "c": c}) == []
    assert [(p.path, p.code) for p in errors(b, {"a": a, "b": b, "c": c})] == \
        [("$.nodes.go", "flow.loop_without_input")]


def test_only_the_gotos_the_start_reaches_without_waiting_are_reported():
    # Coming back to `a` starts it at `start`: a goto after a question is not on the loop.
    a = {"format": 1, "id": "a", "start": "c", "nodes": {
        "c": {"type": "condition", "branches": [{"if": {"var": "x", "eq": 1}, "next": "go"}], "else": "ask"},
        "ask": {**CHOICE, "choices": [{"id": "o", "title": "Oui", "next": "later"}]},
        "go": {"type": "goto", "flow": "b"},
        "later": {"type": "goto", "flow": "b"}}}
    b = flow("b", "a")
    assert [(p.path, p.code) for p in errors(a, {"a": a, "b": b})] == [("$.nodes.go", "flow.loop_without_input")]


def test_the_stored_version_of_this_flow_is_not_read():
    a_stored, a_new, b = flow("a", "b"), flow("a", "b", first=CHOICE), flow("b", "a")
    assert errors(a_new, {"a": a_stored, "b": b}) == []


def test_only_ids_or_broken_definitions_skip_the_check():
    a, b = flow("a", "b"), flow("b", "a")
    assert errors(a, {"a", "b"}) == []                                   # ids only: as before
    assert errors(a, {"a": a, "b": {"format": 1, "nodes": "?"}}) == []
    assert [p.code for p in errors(a, {"a": a})] == ["flow.unknown"]       # b is not a flow


def test_definitions_come_as_their_own_keyword_next_to_the_ids():
    a, b = flow("a", "b"), flow("b", "a")
    found = [p for p in TreeEngine().validate(a, steps={}, flows={"a", "b"}, definitions={"a": None, "b": b})
             if p.severity == "error"]
    assert [(p.path, p.code) for p in found] == [("$.nodes.go", "flow.loop_without_input")]
    assert errors(a, {"a", "b"}) == []        # ids alone: nothing to follow


def test_a_foreach_on_the_way_is_no_pause():
    # The loop runs in the same turn, then the goto: a counted as waiting there.
    each = {"type": "foreach", "list": "items", "do": "say", "next": "go"}
    a = {"format": 1, "id": "a", "start": "each", "vars": {"items": [1]},
         "nodes": {"each": each, "say": {"type": "message", "text": "{{item}}", "next": "each"},
                   "go": {"type": "goto", "flow": "b"}}}
    b = flow("b", "a")
    assert [(p.path, p.code) for p in errors(a, {"a": a, "b": b})] == [("$.nodes.go", "flow.loop_without_input")]
