"""GSM-7 / UCS-2 detection, segment counting, fitting and SMS rendering, as tables."""
from __future__ import annotations

import pytest

from causette_sms import segments
from causette_sms.render import render
from gateway.types import Card, Choice, Media, Reply, TemplateRef

# label, text, encoding, units, segments
COUNTS = [
    ("empty", "", "gsm7", 0, 0),
    ("plain", "Hello", "gsm7", 5, 1),
    ("160 gsm7 fit one", "a" * 160, "gsm7", 160, 1),
    ("161 gsm7 need two", "a" * 161, "gsm7", 161, 2),
    ("306 gsm7 two parts", "a" * 306, "gsm7", 306, 2),
    ("307 gsm7 three parts", "a" * 307, "gsm7", 307, 3),
    ("french accents in gsm7", "Déjà vu à l'été, où ça ? ¿¡", "ucs2", 27, 1),  # ç is not GSM-7
    ("é è ù à are gsm7", "éèùà", "gsm7", 4, 1),
    ("extension chars count 2", "{[€]}", "gsm7", 10, 1),
    ("80 euro signs", "€" * 80, "gsm7", 160, 1),
    ("81 euro signs", "€" * 81, "gsm7", 162, 2),
    ("escape never split", "a" * 152 + "€" + "a" * 152, "gsm7", 306, 3),
    ("one emoji makes ucs2", "Hi 🙂", "ucs2", 5, 1),
    ("70 ucs2 fit one", "ê" * 70, "ucs2", 70, 1),
    ("71 ucs2 need two", "ê" * 71, "ucs2", 71, 2),
    ("134 ucs2 two parts", "ê" * 134, "ucs2", 134, 2),
    ("135 ucs2 three parts", "ê" * 135, "ucs2", 135, 3),
    ("surrogate pair never split", "ê" * 66 + "🙂" + "ê" * 66, "ucs2", 134, 3),
    ("newline is gsm7", "a\nb", "gsm7", 3, 1),
    ("curly quote is ucs2", "l’été", "ucs2", 5, 1),
]


@pytest.mark.parametrize("label,text,enc,units,parts", COUNTS, ids=[c[0] for c in COUNTS])
def test_count(label, text, enc, units, parts):
    info = segments.count(text)
    assert (info.encoding, info.units, info.segments) == (enc, units, parts)


def test_surrogate_pair_packing():
    # 66 units then a 2-unit emoji: part one keeps 66 (67 would split the pair).
    info = segments.count("ê" * 66 + "🙂" * 3)
    assert info.per_segment == 67 and info.segments == 2 and info.remaining == 67 - 6


FITS = [
    # label, text, max, tail, expected
    ("fits untouched", "Bonjour", 1, "", "Bonjour"),
    ("no limit", "a" * 500, 0, "", "a" * 500),
    ("gsm7 cut with three dots", "word " * 40, 1, "", ("word " * 31).rstrip() + "..."),
    ("ucs2 cut with ellipsis", "ê" * 100, 1, "", "ê" * 69 + "…"),
    ("options stay whole", "Que cherchez-vous " * 10, 1, "\n1. Femme\n2. Homme",
     None),
]


@pytest.mark.parametrize("label,text,n,tail,expected", FITS, ids=[f[0] for f in FITS])
def test_fit(label, text, n, tail, expected):
    out = segments.fit(text, n, tail=tail)
    assert n <= 0 or segments.count(out).segments <= n
    if expected is not None:
        assert out == expected
    if tail:
        assert out.endswith("...\n1. Femme\n2. Homme")


def test_fit_never_exceeds_for_any_length():
    for n in (1, 2, 3):
        for size in range(0, 600, 7):
            for ch in ("a", "€", "ê", "🙂"):
                assert segments.count(segments.fit(ch * size, n)).segments <= n


def test_to_gsm7_keeps_french_cheap():
    out = segments.to_gsm7("Fête de Noël – « soldes » jusqu’à −50 % œuvre")
    assert out == 'Fete de Noel - " soldes " jusqu\'à −50 % oeuvre'.replace("−", "−")
    assert segments.to_gsm7("été") == "été"          # é is GSM-7 already
    assert segments.encoding(segments.to_gsm7("Crème brûlée, ça !")) == "gsm7"


# label, reply, max_segments, mms, expected bodies, expected media
RENDERS = [
    ("text", Reply(text="Bonjour !"), 10, False, ["Bonjour !"], []),
    ("choices numbered", Reply(text="Que cherchez-vous ?", choices=[Choice(id="w", title="Femme"),
                                                                   Choice(id="m", title="Homme")]),
     10, False, ["Que cherchez-vous ?\n1. Femme\n2. Homme"], []),
    ("choices without text", Reply(choices=[Choice(id="y", title="Oui"), Choice(id="n", title="Non")]),
     10, False, ["1. Oui\n2. Non"], []),
    ("one card flattened", Reply(text="Nos coups de cœur :", cards=[
        Card(title="Robe rouge", subtitle="49 €", url="https://shop.example/robe")]),
     10, False, ["Nos coups de cœur :\n\nRobe rouge\n49 €\nhttps://shop.example/robe"], []),
    ("cards numbered", Reply(cards=[Card(title="A", url="https://x/a"), Card(title="B", image="https://x/b.jpg")]),
     10, False, ["1. A\nhttps://x/a\n\n2. B\nhttps://x/b.jpg"], []),
    ("media as MMS", Reply(text="Voici", media=[Media(kind="image", url="https://x/i.jpg")]),
     10, True, ["Voici"], ["https://x/i.jpg"]),
    ("media as link without MMS", Reply(text="Voici", media=[Media(kind="image", url="https://x/i.jpg")]),
     10, False, ["Voici\nhttps://x/i.jpg"], []),
    ("template params as text", Reply(template=TemplateRef(name="promo", params=["-20%", "code HIVER"])),
     10, False, ["-20% code HIVER"], []),
    ("empty renders nothing", Reply(), 10, False, [], []),
    ("long text cut to one segment", Reply(text="x " * 200, choices=[Choice(id="a", title="OK")]), 1, False,
     [("x " * 76).rstrip() + "...\n1. OK"], []),
]


@pytest.mark.parametrize("label,reply,n,mms,bodies,media", RENDERS, ids=[r[0] for r in RENDERS])
def test_render(label, reply, n, mms, bodies, media):
    out = render(reply, max_segments=n, mms=mms)
    assert [m.body for m in out] == bodies
    assert [u for m in out for u in m.media] == media
    for m in out:
        assert m.segments == segments.count(m.body).segments <= n


def test_no_segment_limit_still_meets_the_1600_character_cap():
    [m] = render(Reply(text="a" * 2000), max_segments=0)
    assert len(m.body) == 1600 and m.body.endswith("...")
