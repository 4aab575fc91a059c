"""Tolerant matching of typed answers to choices, as a table: what people really type,
and the choice it must map to (None: no choice, the bot asks again)."""
import pytest

from causette_tree.matching import Option, match, normalize

# Who are you shopping for? (titles in two locales, synonyms from the flow)
WHO = [Option("women", ["Femme", "Women"], ["madame", "elle", "her", "woman"]),
       Option("men", ["Homme", "Men"], ["monsieur", "lui", "him", "man"]),
       Option("kids", ["Enfant", "Kids"], ["enfants", "junior", "bébé", "baby", "child"])]
# Would you like a discount code by e-mail?
YESNO = [Option("yes", ["Oui, merci", "Yes please"]), Option("no", ["Non merci", "No thanks"])]
# What are you looking for?
WHAT = [Option("shoes", ["Chaussures", "Shoes"]), Option("clothes", ["Vêtements", "Clothes"]),
        Option("bags", ["Accessoires 👜", "Accessories 👜"]),
        Option("dress", ["Robe de soirée", "Evening dress"])]
# Delivery or pick-up?
DELIVERY = [Option("home", ["Livraison à domicile", "Home delivery"], ["domicile", "chez moi"]),
            Option("store", ["Retrait en magasin", "Store pick-up"], ["magasin", "boutique", "store"])]

# Shoe size (titles that are numbers themselves win over positions)
SIZES = [Option("36", ["36"]), Option("38", ["38"]), Option("40", ["40"])]

TABLE = [
    # numbers and positions
    (WHO, "1", "women"), (WHO, "2", "men"), (WHO, "2.", "men"), (WHO, " 3 ", "kids"),
    (WHO, "#2", "men"), (WHO, "2️⃣", "men"), (WHO, "n°3", "kids"), (WHO, "option 1", "women"),
    (WHO, "deux", "men"), (WHO, "la deuxième", "men"), (WHO, "La 2ème svp", "men"),
    (WHO, "second", "men"), (WHO, "the second one", "men"), (WHO, "2nd", "men"),
    (WHO, "le premier", "women"), (WHO, "first", "women"), (WHO, "la troisième !", "kids"),
    (WHO, "le dernier", "kids"), (WHO, "4", None), (WHO, "0", None), (WHO, "12", None),
    (WHO, "je prends le 2", "men"), (WHO, "2 - Homme", "men"), (WHO, "1) Femme", "women"),
    (WHO, "the first one", "women"), (WHO, "j'ai 2 enfants", "kids"),
    # ids, titles, case, accents, punctuation, emoji
    (WHO, "femme", "women"), (WHO, "FEMME", "women"), (WHO, "Femme !!", "women"),
    (WHO, "homme 👨", "men"), (WHO, "Women", "women"), (WHO, "kids", "kids"),
    (WHO, "enfànt", "kids"), (WHO, "men", "men"), (WHO, "😀", None), (WHO, "", None),
    # synonyms
    (WHO, "bébé", "kids"), (WHO, "bebe", "kids"), (WHO, "pour elle", "women"),
    (WHO, "c'est pour lui", "men"), (WHO, "junior", "kids"),
    # typos
    (WHO, "fmme", "women"), (WHO, "femmes", "women"), (WHO, "hommes", "men"),
    (WHO, "enfnat", "kids"), (WHO, "womn", "women"), (WHO, "fomme", None),
    # inside a sentence, negations
    (WHO, "pour homme svp", "men"), (WHO, "je cherche pour ma femme", "women"),
    (WHO, "pas homme", None), (WHO, "femme ou homme", None), (WHO, "bonjour", None),
    (WHO, "je sais pas", None), (WHO, "oui", None),
    # yes / no
    (YESNO, "oui", "yes"), (YESNO, "Ouais", "yes"), (YESNO, "ouiii", "yes"), (YESNO, "yes", "yes"),
    (YESNO, "yep", "yes"), (YESNO, "ok", "yes"), (YESNO, "d'accord", "yes"),
    (YESNO, "carrément !", "yes"), (YESNO, "👍", "yes"), (YESNO, "non", "no"), (YESNO, "nan", "no"),
    (YESNO, "nope", "no"), (YESNO, "non merci", "no"), (YESNO, "pas vraiment", "no"),
    (YESNO, "👎", "no"), (YESNO, "1", "yes"), (YESNO, "2", "no"), (YESNO, "peut-être", None),
    (YESNO, "Yes please", "yes"), (YESNO, "no thanks", "no"), (YESNO, "of course!", "yes"),
    (YESNO, "Yes 👍", "yes"), (YESNO, "oui et non", None),
    # longer titles
    (WHAT, "chaussure", "shoes"), (WHAT, "chausures", "shoes"), (WHAT, "vetements", "clothes"),
    (WHAT, "VÊTEMENTS", "clothes"), (WHAT, "accessoires", "bags"), (WHAT, "accesoires", "bags"),
    (WHAT, "👜", None), (WHAT, "robe de soiree", "dress"), (WHAT, "une robe de soirée svp", "dress"),
    (WHAT, "shoes", "shoes"), (WHAT, "ok", None), (WHAT, "4", "dress"),
    (SIZES, "38", "38"), (SIZES, "2", "38"), (SIZES, "taille 40", "40"), (SIZES, "39", None),
    (DELIVERY, "en magasin", "store"), (DELIVERY, "livraison", "home"), (DELIVERY, "chez moi", "home"),
    (DELIVERY, "retrait", "store"), (DELIVERY, "home delivery please", "home"),
    (DELIVERY, "livraison a domicile", "home"), (DELIVERY, "store pickup", "store"),
]


def test_table_is_big_enough():
    assert len(TABLE) >= 50


@pytest.mark.parametrize("options,answer,expected", TABLE,
                         ids=[f"{a!r}->{e}" for _, a, e in TABLE])
def test_answer_maps_to_choice(options, answer, expected):
    m = match(answer, options)
    got = options[m.index].id if m else None
    assert got == expected, f"{answer!r} matched {m}"


def test_payload_wins_over_text():
    m = match("1", WHO, payload="kids")
    assert m is not None and WHO[m.index].id == "kids" and m.how == "payload"


def test_unknown_payload_falls_back_to_text():
    m = match("homme", WHO, payload="stale-button")
    assert m is not None and WHO[m.index].id == "men"


def test_match_says_how():
    assert match("2", WHO).how == "position"
    assert match("femme", WHO).how == "exact"
    assert match("fmme", WHO).how == "fuzzy"
    assert match("ouais", YESNO).how == "yes"


def test_normalize():
    assert normalize("  Là, DEUXIÈME ! 😀 ") == "la deuxieme"
    assert normalize("2️⃣") == "2"
    assert normalize("L'œuf") == "l œuf"
