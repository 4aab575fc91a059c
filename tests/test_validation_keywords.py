"""What flow validation hands an engine: `flows` (the tenant's flow ids) as a set and
`definitions` only to engines whose `validate` names them, so engines written before either
keyword keep working."""
from gateway.flows import FlowEngine
from gateway.plugins import PluginHost
from gateway.types import Problem
from gateway.validation import validate_flow


class SetEngine(FlowEngine):
    """Takes `flows` and uses it as a set, as engines did before `definitions`."""
    name = "setengine"
    seen: list = []

    def validate(self, flow, *, steps, channels={}, flows=None):
        self.seen.append(flows)
        known = flows | {flow["id"]}
        return [Problem(path="$.next", code="flow.unknown", message="?")] if flow["next"] not in known else []


class FullEngine(FlowEngine):
    name = "fullengine"
    seen: list = []

    def validate(self, flow, *, steps, channels={}, flows=None, definitions=None):
        self.seen.append((flows, definitions))
        return []


class Bare(FlowEngine):
    name = "bare"

    def validate(self, flow, *, steps, channels={}):
        return []


def test_each_engine_gets_the_keywords_its_signature_names():
    host = PluginHost(entrypoints=False)
    for e in (SetEngine(), FullEngine(), Bare()):
        host.engines[e.name] = e
    defs = {"a": None, "b": {"id": "b"}}
    ids = {"a", "b"}
    assert validate_flow(host, {"engine": "setengine", "id": "a", "next": "b"}, {}, ids, defs) == []
    assert validate_flow(host, {"engine": "setengine", "id": "a", "next": "zz"}, {}, ids, defs)[0].code == "flow.unknown"
    assert SetEngine.seen[-1] == ids and isinstance(SetEngine.seen[-1], set)
    assert validate_flow(host, {"engine": "fullengine", "id": "a"}, {}, ids, defs) == []
    assert FullEngine.seen[-1] == (ids, defs)
    assert validate_flow(host, {"engine": "bare", "id": "a"}, {}, ids, defs) == []
