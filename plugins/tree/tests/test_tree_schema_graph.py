"""The JSON Schema comes from the same Structs that decode flows; pictures of flows."""
import json
import xml.etree.ElementTree as ET

import msgspec

from causette_tree import TreeEngine, model
from gateway.hookspecs import hookimpl  # noqa: F401  (the plugin's own import path)
from gateway.testing import load_demo

EXAMPLE = load_demo()["flows"][0]


def test_plugin_registers_the_engine():
    import causette_tree
    engines = causette_tree.register_flow_engines()
    assert [e.name for e in engines] == ["tree"]


def test_schema_lists_every_node_type():
    schema = TreeEngine().schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    defs = schema["$defs"]
    flow = defs["Flow"]
    assert set(flow["required"]) == {"format", "id", "start", "nodes"}
    union = flow["properties"]["nodes"]["additionalProperties"]
    assert set(union["discriminator"]["mapping"]) == set(model.NODE_TYPES)
    for tag, cls in model.NODE_TYPES.items():
        d = defs[cls.__name__]
        assert d["properties"]["type"]["enum"] == [tag]
        assert d.get("additionalProperties") is False        # forbid_unknown_fields
    assert sorted(defs["Input"]["properties"]["validate"]["enum"]) == sorted(model.VALIDATORS)
    assert json.loads(json.dumps(schema)) == schema


def test_schema_is_generated_from_the_decoding_structs():
    assert TreeEngine().schema() == {**msgspec.json.schema(model.Flow),
                                     "$schema": "https://json-schema.org/draft/2020-12/schema",
                                     "title": "Causette flow (engine tree, format 1)"}
    flow = msgspec.convert(EXAMPLE, model.Flow)
    assert isinstance(flow.nodes["who"], model.ChoiceNode)
    assert msgspec.to_builtins(flow)["nodes"]["catalogue"]["with"]["save"] == {
        "products": "$.products", "count": "$.count"}


def test_mermaid_labels_edges():
    m = TreeEngine().graph(EXAMPLE)["mermaid"]
    assert m.startswith("flowchart TD\n")
    assert '-->|"Femme"|' in m and '-->|"Oui, merci"|' in m and '-->|"count > 0"|' in m
    assert '-->|"error"|' in m and '-->|"each"|' in m and '-->|"else"|' in m
    assert "classDef choice" in m and "end: converted" in m
    assert m.count("-->") == 26


def test_svg_is_well_formed_with_a_shape_per_node():
    svg = TreeEngine().graph(EXAMPLE)["svg"]
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    groups = root.findall("s:g[@data-id]", ns)
    assert sorted(g.get("data-id") for g in groups) == sorted(EXAMPLE["nodes"])
    kinds = {g.get("data-id"): g.get("class").split()[1] for g in groups}
    assert kinds["who"] == "choice" and kinds["order"] == "end" and kinds["catalogue"] == "step"
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "Femme / Homme / Enfant" in labels and "count > 0" in labels
    assert len(root.findall("s:path", ns)) == 22     # parallel edges drawn once


def test_graph_of_a_broken_draft_still_draws():
    flow = {"start": "a", "nodes": {"a": {"type": "message", "text": "x", "next": "ghost"},
                                    "b": {"type": "teleport"},
                                    "c": {"type": "goto", "flow": "other"}}}
    g = TreeEngine().graph(flow)
    assert "b: invalid" in g["mermaid"] and "flow other" in g["mermaid"]
    ET.fromstring(g["svg"])
    assert TreeEngine().graph({})["svg"].startswith("<svg")


def test_svg_holds_no_character_xml_forbids():
    # html.escape leaves ESC, NUL, U+FFFE...: the SVG was not well-formed, no browser drew it.
    bad = "\x1b[31m\x00\x01\ufffe\uffff\ud800"
    flow = {"start": "a", "nodes": {
        "a": {"type": "choice", "text": f"Rouge {bad}?", "label": bad,
              "choices": [{"id": "r", "title": f"Oui{bad}", "next": "b"}]},
        f"b{bad}": {"type": "goto", "flow": f"autre{bad}"},
        "b": {"type": "split", "variants": [{"id": f"v{bad}", "next": f"b{bad}"}]}}}
    g = TreeEngine().graph(flow)
    root = ET.fromstring(g["svg"].encode())
    assert "\ufffd" in "".join(root.itertext())
    assert not any(c in g["mermaid"] for c in "\x1b\x00\x01\ufffe\uffff\ud800")
