"""`{{path}}` templates: safe substitution with a few filters, never code."""
import pytest

from causette_tree.template import Template, TemplateError

VARS = {"category": "w", "count": 3, "price": 29.0, "products": [{"name": "Pull", "price": 29},
                                                                  {"name": "Jean"}],
        "tags": ["vip", "soldes"], "empty": "", "flag": True}
CONTACT = {"first_name": "léa", "email": "lea@example.fr"}


@pytest.mark.parametrize("source,expected", [
    ("Bonjour {{contact.first_name}} !", "Bonjour léa !"),
    ("{{ contact.first_name | capitalize }}", "Léa"),
    ("{{contact.first_name|upper}}", "LÉA"),
    ("{{contact.last_name | default: \"client\"}}", "client"),
    ("{{empty | default: 'rien'}}", "rien"),
    ("{{category}}/{{vars.category}}", "w/w"),
    ("{{count}} articles à {{price}} €", "3 articles à 29 €"),
    ("{{products.0.name}} puis {{products.1.name}}", "Pull puis Jean"),
    ("{{products.5.name}}|{{nothing.deep.path}}|", "||"),
    ("{{tags}}", "vip, soldes"),
    ("{{tags | join: \" / \"}} ({{tags | length}})", "vip / soldes (2)"),
    ("{{products | first}}", '{"name": "Pull", "price": 29}'),   # JSON, not Python's repr
    ("{{flag}}", "true"),
    ("q={{contact.email | url}}", "q=lea%40example.fr"),
    ("{{contact.first_name | truncate: 2}}", "l…"),
    ("no template at all", "no template at all"),
    ("{{__class__}}", ""),
    ("Bonjour {{contact.nickname}} !", "Bonjour !"),
    ("Bonjour {{contact.nickname}}\n\n{{tags}}  ok", "Bonjour\n\nvip, soldes ok"),
    ("Bonjour {{contact.first_name}}  !", "Bonjour {{contact.first_name}}  !".replace("{{contact.first_name}}", "léa")),
])
def test_render(source, expected):
    assert Template(source).render(VARS, CONTACT) == expected


@pytest.mark.parametrize("source", [
    "{{}}", "{{ }}", "Hi {{name", "Hi name}}", "{{a | nope}}", "{{a.}}", "{{contact}}",
    "{{a | default}}", "{{ a b }}", "{{ a() }}", "{{a[0]}}", "{{a | truncate: x}}",
])
def test_parse_errors(source):
    with pytest.raises(TemplateError):
        Template(source)


def test_single_lookup_keeps_its_type():
    assert Template("{{products}}").value(VARS, CONTACT) == VARS["products"]
    assert Template("{{count}}").value(VARS, CONTACT) == 3
    assert Template("n={{count}}").value(VARS, CONTACT) == "n=3"


def test_lookups_name_their_variables():
    t = Template("{{a.b}} {{contact.x}} {{vars.c}}")
    assert [lk.var for lk in t.lookups] == ["a", "contact.x", "c"]
