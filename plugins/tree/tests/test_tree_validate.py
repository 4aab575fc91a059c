"""Validation answers every problem at once, each with a JSON path, a code and a sentence."""
import copy

import pytest

from causette_http import HttpRequest
from causette_tree import TreeEngine
from gateway.channels import Capabilities
from gateway.flows import Step
from gateway.testing import load_demo

from .conftest import EchoStep

EXAMPLE = load_demo()["flows"][0]
STEPS: dict[str, Step] = {"http.request": HttpRequest(), "test.echo": EchoStep()}
WHATSAPP = Capabilities(text_length=4096, buttons=3, button_title=20, list_rows=10, list_title=24)
MESSENGER = Capabilities(text_length=2000, buttons=13, button_title=20)
RCS = Capabilities(text_length=3072, buttons=11, button_title=25)
SMS = Capabilities(text_length=1600, buttons=0)


def validate(flow, **kw):
    kw.setdefault("steps", STEPS)
    return TreeEngine().validate(flow, **kw)


def codes(problems, severity=None):
    return sorted({(p.path, p.code) for p in problems if severity in (None, p.severity)})


def base(**nodes):
    return {"format": 1, "id": "f", "start": "a",
            "nodes": {"a": {"type": "message", "text": "Bonjour", "next": "z"},
                      "z": {"type": "end"}, **nodes}}


def test_demo_flow_is_clean_with_its_channels():
    assert validate(EXAMPLE, channels={"wa": WHATSAPP, "fb": MESSENGER, "rcs": RCS}) == []


def test_sms_gets_numbered_options_warnings_only():
    problems = validate(EXAMPLE, channels={"sms": SMS})
    assert problems and all(p.severity == "warning" for p in problems)
    assert {p.code for p in problems} == {"channel.too_many_buttons"}
    assert "numbered options" in problems[0].message and "'sms'" in problems[0].message


def test_every_problem_at_once():
    flow = {"format": 1, "id": "broken", "start": "hello", "nodes": {
        "hello": {"type": "message", "text": "Bonjour {{contact.first_name | shout}}", "next": "pick"},
        "pick": {"type": "choice", "text": "Choix ?", "choices": [
            {"id": "a", "title": "A", "next": "nowhere"}, {"id": "a", "title": "B", "next": "ask"}]},
        "ask": {"type": "input", "text": "?", "validate": "postcode", "save_as": "zip", "next": "call"},
        "call": {"type": "step", "step": "crm.magic", "next": "spin"},
        "spin": {"type": "set", "vars": {"n": "{{n}}"}, "next": "spin2"},
        "spin2": {"type": "goto", "node": "spin"},
        "orphan": {"type": "teleport"},
        "typo": {"type": "end", "outcome": "won"},
    }}
    found = codes(validate(flow))
    assert found == sorted([
        ("$.nodes.hello.text", "template.invalid"),
        ("$.nodes.pick.choices[0].next", "next.unknown"),
        ("$.nodes.pick.choices[1].id", "choice.duplicate_id"),
        ("$.nodes.ask.validate", "input.unknown_validator"),
        ("$.nodes.call.step", "step.unknown"),
        ("$.nodes.spin", "flow.loop_without_input"),
        ("$.nodes.orphan.type", "node.unknown_type"),
        ("$.nodes.typo.outcome", "node.invalid"),
        ("$.nodes.orphan", "node.unreachable"),
        ("$.nodes.typo", "node.unreachable"),
    ])
    for p in validate(flow):
        assert p.message and p.path.startswith("$") and p.severity in ("error", "warning")


@pytest.mark.parametrize("mutate,path,code", [
    (lambda f: f.pop("start"), "$.start", "flow.start_missing"),
    (lambda f: f.update(start="nope"), "$.start", "flow.start_unknown"),
    (lambda f: f.pop("format"), "$.format", "flow.format_missing"),
    (lambda f: f.update(format=2), "$.format", "flow.format_unsupported"),
    (lambda f: f.update(nodes={}), "$.nodes", "flow.no_nodes"),
    (lambda f: f.update(locale=3), "$.locale", "flow.invalid"),
    (lambda f: f.update(triggers=[{"type": "moon"}]), "$.triggers[0].type", "flow.invalid"),
    (lambda f: f.update(triggers=[{"type": "keyword", "any": ["Soldes", "soldés"]}]),
     "$.triggers[0].any[1]", "trigger.duplicate"),
    (lambda f: f.update(active={"from": "2027-02-01T00:00:00+01:00", "until": "2027-01-01T00:00:00+01:00"}),
     "$.active", "active.empty"),
    (lambda f: f.update(active={"from": "2027-02-01T00:00:00", "until": "2027-01-01T00:00:00"}),
     "$.active", "active.empty"),
    (lambda f: f["nodes"].update({"bad id!": {"type": "end"}}), '$.nodes["bad id!"]', "node.invalid_id"),
    (lambda f: f["nodes"]["a"].update(colour="red"), "$.nodes.a.colour", "field.unknown"),
    (lambda f: f.update(owner="me"), "$.owner", "field.unknown"),
    (lambda f: f["nodes"]["a"].update(text="Hi {{ }}"), "$.nodes.a.text", "template.invalid"),
    (lambda f: f["nodes"]["a"].update(text="Hi {{a}"), "$.nodes.a.text", "template.invalid"),
    (lambda f: f["nodes"]["a"].update(text={"fr": "Salut", "en": "Hi {{x | default}}"}),
     "$.nodes.a.text.en", "template.invalid"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_error_codes(mutate, path, code):
    flow = base()
    mutate(flow)
    assert (path, code) in codes(validate(flow)), validate(flow)


@pytest.mark.parametrize("node,path,code", [
    ({"type": "input", "text": "?", "validate": "regex", "save_as": "x"}, "$.nodes.n.pattern", "input.invalid_pattern"),
    ({"type": "input", "text": "?", "validate": "regex", "pattern": "([0-9]", "save_as": "x"},
     "$.nodes.n.pattern", "input.invalid_pattern"),
    ({"type": "input", "text": "?", "save_as": "bad name"}, "$.nodes.n.save_as", "node.invalid"),
    ({"type": "wait", "for": "soon"}, "$.nodes.n.for", "duration.invalid"),
    ({"type": "choice", "text": "?", "choices": [{"id": "a", "title": "A"}],
      "timeout": {"after": "-5m"}}, "$.nodes.n.timeout.after", "duration.invalid"),
    ({"type": "condition", "branches": [{"if": {"var": "x", "eq": 1, "gt": 2}, "next": "z"}], "else": "z"},
     "$.nodes.n.branches[0].if", "condition.invalid"),
    ({"type": "condition", "branches": [{"if": {"eq": 1}, "next": "z"}], "else": "z"},
     "$.nodes.n.branches[0].if", "condition.invalid"),
    ({"type": "condition", "branches": [{"if": {"all": [{"var": "x"}]}, "next": "z"}], "else": "z"},
     "$.nodes.n.branches[0].if.all[0]", "condition.invalid"),
    ({"type": "condition", "branches": [{"if": {"var": "x", "matches": "(("}, "next": "z"}], "else": "z"},
     "$.nodes.n.branches[0].if.matches", "condition.invalid"),
    ({"type": "condition", "branches": [{"if": {"var": "x", "between": [1, 2]}, "next": "z"}]},
     "$.nodes.n.branches[0].if.between", "field.unknown"),
    ({"type": "goto"}, "$.nodes.n", "goto.invalid"),
    ({"type": "goto", "node": "z", "flow": "other"}, "$.nodes.n", "goto.invalid"),
    ({"type": "goto", "node": "ghost"}, "$.nodes.n.node", "next.unknown"),
    ({"type": "split", "variants": [{"id": "A", "weight": 0, "next": "z"}]}, "$.nodes.n.variants", "split.no_weight"),
    ({"type": "split", "variants": [{"id": "A", "next": "z"}, {"id": "A", "next": "z"}]},
     "$.nodes.n.variants[1].id", "split.duplicate_id"),
    ({"type": "foreach", "list": "items", "do": "ghost"}, "$.nodes.n.do", "next.unknown"),
    ({"type": "foreach", "list": "items", "do": "z", "max": 1000}, "$.nodes.n.max", "node.invalid"),
    ({"type": "set", "vars": {"a-b": 1}, "next": "z"}, '$.nodes.n.vars["a-b"]', "var.invalid_name"),
    ({"type": "step", "step": "http.request", "with": {"url": "https://x.example", "method": "FETCH"}},
     "$.nodes.n.with.method", "step.invalid_args"),
    ({"type": "step", "step": "http.request", "with": {"href": "https://x.example"}},
     "$.nodes.n.with.href", "step.invalid_args"),
    ({"type": "step", "step": "http.request", "with": {}}, "$.nodes.n.with", "step.invalid_args"),
    ({"type": "step", "step": "test.echo", "with": {"ok": "yes"}, "next": "z"}, "$.nodes.n.with.ok", "step.invalid_args"),
    ({"type": "step", "step": "test.echo", "next": "z", "branches": {"x": "ghost"}},
     "$.nodes.n.branches.x", "next.unknown"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_node_error_codes(node, path, code):
    flow = base(n=node)
    flow["nodes"]["a"]["next"] = "n"
    assert (path, code) in codes(validate(flow, flows={"f"})), validate(flow)


def test_templated_step_args_are_checked_at_run_time_only():
    flow = base(n={"type": "step", "step": "test.echo", "with": {"ok": "{{flag}}"}, "next": "z"})
    flow["nodes"]["a"]["next"] = "n"
    flow["vars"] = {"flag": True}
    assert validate(flow) == []


def test_a_templated_arg_does_not_hide_the_other_args_problems():
    # msgspec stops at its first problem: a templated field first must not hide a typo after
    flow = base(n={"type": "step", "step": "http.request",
                   "with": {"url": "https://api.example/p", "timeout": "{{t}}", "methd": "POST"}, "next": "z"},
                m={"type": "step", "step": "http.request",
                   "with": {"url": "{{base}}/p", "timeout": "{{t}}", "vars": "{{v}}", "save_status": 5}, "next": "z"})
    flow["nodes"]["a"]["next"] = "n"
    flow["nodes"]["n"]["next"] = "m"
    flow["vars"] = {"t": 2, "base": "https://api.example", "v": {}}
    found = codes(validate(flow), "error")
    assert ("$.nodes.n.with.methd", "step.invalid_args") in found
    assert ("$.nodes.m.with.vars", "step.invalid_args") in found        # unknown field, templated or not
    assert not [pc for pc in found if pc[0].endswith((".timeout", ".url"))]


def test_goto_unknown_flow_needs_the_tenants_flows():
    flow = base(n={"type": "goto", "flow": "after-sales"})
    flow["nodes"]["a"]["next"] = "n"
    del flow["nodes"]["z"]
    assert ("$.nodes.n.flow", "flow.unknown") in codes(validate(flow, flows={"f", "welcome"}))
    assert validate(flow, flows={"f", "after-sales"}) == []
    assert validate(flow) == []            # without the list, the core checks at publish


def test_warnings():
    flow = base(
        ask={"type": "choice", "text": {"fr": "Taille ?", "en": "Size?"}, "choices": [
            {"id": "s", "title": {"fr": "Petit"}, "next": "z"}, {"id": "l", "title": "Large"}]},
        tell={"type": "message", "text": "Prix : {{price}} pour {{contact.first_name}}", "next": "z"},
        check={"type": "condition", "branches": [{"if": {"var": "budget", "gt": 10}, "next": "z"}]},
        nothing={"type": "message"})
    flow["nodes"]["a"]["next"] = "ask"
    found = codes(validate(flow), "warning")
    assert ("$.nodes.ask.choices[0].title", "text.missing_translation") in found
    assert ("$.nodes.ask.choices[1].next", "choice.no_next") in found
    assert ("$.nodes.tell.text", "var.never_set") in found           # contact.* never warns
    assert ("$.nodes.check.branches[0].if.var", "var.never_set") in found
    assert ("$.nodes.check.else", "condition.no_else") in found
    assert ("$.nodes.nothing", "message.empty") in found
    assert ("$.nodes.tell", "node.unreachable") in found
    assert all(p.severity == "warning" for p in validate(flow))


def test_referral_refs_that_links_cannot_carry_are_warned():
    flow = base()
    flow["triggers"] = [{"type": "referral", "ref": "soldes-hiver_2027"}, {"type": "referral", "ref": "soldes hiver"},
                        {"type": "referral", "ref": "été"}, {"type": "referral", "ref": "6045246247433"}]
    assert [pc for pc in codes(validate(flow)) if pc[1] == "trigger.ref"] == [
        ("$.triggers[1].ref", "trigger.ref"), ("$.triggers[2].ref", "trigger.ref")]


def test_declared_locales_flag_plain_texts():
    flow = base()
    flow["locales"] = ["fr", "en"]
    assert codes(validate(flow)) == [("$.nodes.a.text", "text.missing_translation")]


def test_variables_set_anywhere_count():
    flow = base(
        ask={"type": "input", "text": "?", "save_as": "email", "next": "s"},
        s={"type": "set", "vars": {"greet": "hi"}, "next": "call"},
        call={"type": "step", "step": "http.request", "with": {
            "url": "https://api.example/{{email}}", "save": {"items": "$.items"}}, "next": "loop"},
        loop={"type": "foreach", "list": "items", "as": "item", "do": "show", "next": "z"},
        show={"type": "message", "text": "{{greet}} {{item.name}} {{item_index}} {{vars.email}} {{seed}}",
              "next": "loop"})
    flow["nodes"]["a"]["next"] = "ask"
    flow["vars"] = {"seed": 1}
    assert validate(flow) == []


def test_loop_through_wait_only_is_a_warning():
    flow = base(w={"type": "wait", "for": "1d", "next": "m"},
                m={"type": "message", "text": "Toujours là ?", "next": "w"})
    flow["nodes"]["a"]["next"] = "w"
    del flow["nodes"]["z"]
    assert codes(validate(flow)) == [("$.nodes.m", "flow.loop_wait_only")]
    assert validate(flow)[0].severity == "warning"


def test_loop_through_a_question_or_foreach_is_fine():
    flow = base(q={"type": "choice", "text": "Encore ?", "choices": [
        {"id": "y", "title": "Oui", "next": "a"}, {"id": "n", "title": "Non", "next": "z"}]})
    flow["nodes"]["a"]["next"] = "q"
    assert validate(flow) == []


def test_a_foreach_whose_next_comes_back_to_it_is_a_loop():
    # The foreach counted as a pause: after the last item `m` started it over, for ever.
    flow = base(f={"type": "foreach", "list": "items", "do": "o", "next": "m"},
                o={"type": "message", "text": "item {{item}}", "next": "f"},
                m={"type": "message", "text": "again", "next": "f"})
    flow["nodes"]["a"]["next"] = "f"
    flow["vars"] = {"items": [1, 2]}
    (path, code, severity), = [(p.path, p.code, p.severity) for p in validate(flow) if p.code != "node.unreachable"]
    assert (path, code, severity) == ("$.nodes.f.next", "flow.loop_without_input", "error")
    flow["nodes"]["m"] = {"type": "choice", "text": "Encore ?", "choices": [{"id": "y", "title": "Oui", "next": "f"}]}
    assert [p.code for p in validate(flow)] == ["node.unreachable"]       # z: nothing ends it now
    # Its body's way back is bounded, also through an inner foreach's `next`.
    flow["nodes"]["m"] = {"type": "end"}
    flow["nodes"]["o"] = {"type": "foreach", "list": "item", "as": "x", "do": "p", "next": "f"}
    flow["nodes"]["p"] = {"type": "message", "text": "{{x}}", "next": "o"}
    assert [p.code for p in validate(flow)] == ["node.unreachable"]


def test_active_message_is_checked_for_translations():
    flow = base()
    flow["locales"] = ["fr", "en"]
    flow["nodes"]["a"]["text"] = {"fr": "Bonjour", "en": "Hello"}
    flow["active"] = {"until": "2027-02-04T20:00:00+01:00", "message": {"de": "vorbei"}}
    (p,) = validate(flow)
    assert (p.path, p.code) == ("$.active.message", "text.missing_translation")
    assert "en, fr" in p.message
    flow["active"]["message"] = {"fr": "Terminé {{x}}", "en": "Over"}      # sent as written
    assert validate(flow) == []


def test_channel_lint():
    flow = base(pick={"type": "choice", "text": "x" * 1700, "choices": [
        {"id": str(i), "title": f"Option numéro {i} très longue", "next": "z"} for i in range(5)]})
    flow["nodes"]["a"]["next"] = "pick"
    wa = validate(flow, channels={"wa": WHATSAPP})
    assert codes(wa) == [("$.nodes.pick.choices", "channel.too_many_buttons")] + \
        [(f"$.nodes.pick.choices[{i}].title", "channel.title_too_long") for i in range(5)]
    assert "as a list" in wa[0].message and "cut to" in wa[1].message
    rcs = validate(flow, channels={"rcs": RCS})
    assert codes(rcs) == [(f"$.nodes.pick.choices[{i}].title", "channel.title_too_long") for i in range(5)]
    sms = validate(flow, channels={"sms": SMS})
    assert codes(sms) == [("$.nodes.pick.choices", "channel.too_many_buttons"),
                          ("$.nodes.pick.text", "channel.text_too_long")]
    many = copy.deepcopy(flow)
    many["nodes"]["pick"]["choices"] = [{"id": str(i), "title": f"T{i}", "next": "z"} for i in range(14)]
    many["nodes"]["pick"]["text"] = "?"
    fb = validate(many, channels={"fb": MESSENGER, "wa": WHATSAPP})
    assert [("fb" in p.message, "numbered" in p.message) for p in fb] == [(True, True), (False, True)]


def test_channel_window_lint():
    flow = base(w={"type": "wait", "for": "2d", "next": "q"},
                q={"type": "choice", "text": "Toujours intéressé ?", "choices": [{"id": "y", "title": "Oui"}],
                   "timeout": {"after": "25h", "reminder": "Dernière chance !"}, "next": "z"})
    flow["nodes"]["a"]["next"] = "w"
    wa = validate(flow, channels={"wa": Capabilities(buttons=3, window_hours=24, templates=True)})
    assert codes(wa) == [("$.nodes.q.timeout.after", "channel.window"), ("$.nodes.w.for", "channel.window")]
    assert "24 h" in wa[0].message and "template" in wa[0].message
    assert validate(flow, channels={"web": Capabilities(buttons=10)}) == []


def test_not_an_object():
    assert codes(validate([1, 2])) == [("$", "flow.not_object")]


def test_unknown_fields_do_not_hide_the_nodes_other_problems():
    # A typo'd field in one choice used to stop the node's decoding: its other choice's
    # unknown target only showed once the typo was fixed.
    flow = {"format": 1, "id": "f", "start": "ask", "nodes": {
        "ask": {"type": "choice", "text": "Oui ?", "colour": "red", "choices": [
            {"id": "a", "title": "A", "nxet": "end"},
            {"id": "b", "title": "B", "next": "nowhere"}]},
        "end": {"type": "end", "outcome": "completed"}}}
    got = {(p.path, p.code) for p in validate(flow)}
    assert ("$.nodes.ask.colour", "field.unknown") in got
    assert ("$.nodes.ask.choices[0].nxet", "field.unknown") in got
    assert any(path.startswith("$.nodes.ask.choices[1].next") and code == "next.unknown"
               for path, code in got), got


def test_a_flow_full_of_unknown_fields_costs_a_bounded_number_of_decodes():
    from causette_tree import validate as v
    nodes = {f"n{i}": {"type": "message", "text": "x", **{f"junk{j}": 1 for j in range(5)}}
             for i in range(100)}
    flow = {"format": 1, "id": "f", "start": "n0", "nodes": nodes}
    unknown = [p for p in validate(flow) if p.code == "field.unknown"]
    # all five of each node while the flow's budget of decodes lasts (5 a node), then the
    # first of each node left
    whole = v.MAX_REDECODES // 5
    assert len(unknown) == whole * 5 + (100 - whole)


def test_nodes_after_one_that_did_not_decode_are_not_reported_unreachable():
    from causette_tree import validate as v
    chain = {f"n{i}": {"type": "message", "text": "x", "next": f"n{i + 1}", "junk": 1}
             for i in range(v.MAX_REDECODES + 50)}
    chain[f"n{v.MAX_REDECODES + 50}"] = {"type": "end", "outcome": "completed"}
    codes = [p.code for p in validate({"format": 1, "id": "f", "start": "n0", "nodes": chain})]
    assert codes.count("field.unknown") == v.MAX_REDECODES + 50 and "node.unreachable" not in codes
