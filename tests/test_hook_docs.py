"""Keep the hooks honest: each is documented with its exact signature and exercised by a test."""
import inspect
import re
from pathlib import Path


import gateway.hookspecs as specs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [n for n, f in vars(specs).items()
         if inspect.isfunction(f) and hasattr(f, "causette_spec")]


def test_every_hook_is_documented_with_its_signature():
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert len(HOOKS) >= 9
    for name in HOOKS:
        params = ", ".join(inspect.signature(getattr(specs, name)).parameters)
        assert f"### `{name}({params})`" in docs, name


def test_every_hook_is_exercised_by_some_test():
    text = "\n".join(p.read_text() for p in list((ROOT / "tests").glob("test_*.py"))
                     + list((ROOT / "plugins").glob("*/tests/test_*.py"))
                     if p.name != "test_hook_docs.py")
    missing = [n for n in HOOKS if not re.search(rf"\b{n}\b", text)]
    assert not missing, f"hooks no test mentions: {missing}"
