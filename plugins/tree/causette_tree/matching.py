"""Tolerant matching of a typed answer to one of a `choice` node's options.

People type "2", "2.", "la deuxième", "second one", "femme", "FEMME !", "fmme", "ouais" or
an emoji instead of pressing a button. The matcher tries, in order, from the most to the
least certain, and answers None rather than guess between two options:

1. the button payload (the choice id) when the channel sent one;
2. the whole answer equal to an id, a title (any locale) or a synonym;
3. a position: "2", "#2", "2️⃣", "deux", "la deuxième", "second", "the 2nd one", "dernier";
4. yes / no words ("oui", "ouais", "yep", "nope", "👍") for options that are yes or no;
5. an option's title or synonym inside a longer answer ("pour homme svp"), not negated,
   or the answer inside a longer title ("livraison" for "Livraison à domicile");
6. small typos (rapidfuzz ratio >= 80, with a clear lead over the runner-up).
"""
from __future__ import annotations

import unicodedata
from typing import Iterable, Sequence

from rapidfuzz import fuzz

FUZZY_MIN = 80.0      # ratio for a typo to count ("chausures" vs "chaussures" = 95)
FUZZY_LEAD = 10.0     # points ahead of the runner-up ("fomme": femme 80, homme 80 -> none)


def normalize(text: str) -> str:
    """Case-, accent-, punctuation- and emoji-free form: "  Là, DEUXIÈME ! 😀" -> "la deuxieme"."""
    out = []
    for c in unicodedata.normalize("NFKD", text.casefold()):
        cat = unicodedata.category(c)
        if cat[0] in "LN":
            out.append(c)
        elif cat[0] != "M":            # combining marks vanish; everything else separates
            out.append(" ")
    return " ".join("".join(out).split())


_ORDINALS: dict[int, tuple[str, ...]] = {
    1: ("un", "une", "premier", "premiere", "1er", "1ere", "1re", "first", "1st", "one"),
    2: ("deux", "deuxieme", "second", "seconde", "2e", "2eme", "2nd", "two"),
    3: ("trois", "troisieme", "3e", "3eme", "third", "3rd", "three"),
    4: ("quatre", "quatrieme", "4e", "4eme", "fourth", "4th", "four"),
    5: ("cinq", "cinquieme", "5e", "5eme", "fifth", "5th", "five"),
    6: ("six", "sixieme", "6e", "6eme", "sixth", "6th"),
    7: ("sept", "septieme", "7e", "7eme", "seventh", "7th", "seven"),
    8: ("huit", "huitieme", "8e", "8eme", "eighth", "8th", "eight"),
    9: ("neuf", "neuvieme", "9e", "9eme", "ninth", "9th", "nine"),
    10: ("dix", "dixieme", "10e", "10eme", "tenth", "10th", "ten"),
}
ORDINAL = {w: n for n, words in _ORDINALS.items() for w in words}
LAST = {"dernier", "derniere", "last"}

# Words around a position or an option's name that carry no choice of their own.
FILLER = frozenset("""
la le l les the a an option options choix choice reponse answer numero number num n nr
je j veux voudrais prends prendrai choisis prefere i want ll take d like pick choose go with
please plz pls svp stp merci thanks thx celle celui ci that it c est is pour moi me for
alors euh hmm bah ben du de des one
""".split())

YES = frozenset({
    "oui", "ouais", "ouai", "ouii", "ouiii", "wi", "oue", "yes", "yess", "yep", "yeah", "yea",
    "ya", "yup", "ok", "okay", "oki", "okey", "dac", "d accord", "daccord", "carrement",
    "bien sur", "volontiers", "sure", "of course", "absolument", "absolutely", "exactement",
    "exactly", "affirmatif", "parfait", "oui merci", "yes please", "avec plaisir", "o", "y",
    "certainement", "evidemment", "grave", "tout a fait", "why not", "pourquoi pas",
})
NO = frozenset({
    "non", "nan", "nope", "no", "nah", "nop", "pas du tout", "jamais", "never", "not really",
    "pas vraiment", "no thanks", "no thank you", "non merci", "pas interesse", "pas interessee",
    "not interested", "negatif", "n", "surtout pas", "certainly not", "absolutely not",
})
YES_EMOJI = ("\U0001F44D", "\U0001F44C", "\u2705", "\u2714", "\U0001F197")   # 👍 👌 ✅ ✔ 🆗
NO_EMOJI = ("\U0001F44E", "\u274C", "\U0001F6AB", "\u2716", "\u26D4")        # 👎 ❌ 🚫 ✖ ⛔
NEGATIONS = frozenset({"pas", "not", "no", "non", "sans", "without", "ni", "jamais", "never"})


class Option:
    """One choice as the matcher sees it: normalized names, precomputed once per flow version."""
    __slots__ = ("id", "names", "yesno")

    def __init__(self, id: str, titles: Iterable[str], synonyms: Iterable[str] = ()):
        self.id = id
        names: list[str] = []
        for s in (id, *titles, *synonyms):
            n = normalize(s)
            if n and n not in names:
                names.append(n)
        self.names = names
        kinds = {_yesno_name(n) for n in names} - {""}
        self.yesno = kinds.pop() if len(kinds) == 1 else ""


def _yesno_name(name: str) -> str:
    first = name.split()[0]
    if name in YES or first in ("oui", "yes"):
        return "yes"
    if name in NO or first in ("non", "no"):
        return "no"
    return ""


class Match:
    __slots__ = ("index", "how", "score")

    def __init__(self, index: int, how: str, score: float = 100.0):
        self.index, self.how, self.score = index, how, score

    def __repr__(self) -> str:
        return f"Match({self.index}, {self.how!r}, {self.score:.0f})"


def _strip_fillers(tokens: list[str]) -> list[str]:
    kept = [t for t in tokens if t not in FILLER]
    return kept or tokens


def _position(tokens: list[str], count: int) -> int | None:
    if len(tokens) != 1:
        return None
    t = tokens[0]
    if t.isdecimal():
        # Any script's digits ("٢"); a number too long for any position is none (int() of
        # 5,000 digits raises). Other "digits" ("፩") are not decimal: int() refuses them.
        n = int(t) if len(t) <= 6 else 0
    elif t in ORDINAL:
        n = ORDINAL[t]
    elif t in LAST:
        n = count
    else:
        return None
    return n - 1 if 1 <= n <= count else None


def _contains(hay: list[str], needle: list[str]) -> bool:
    """needle occurs in hay as whole consecutive words, not right after a negation."""
    k = len(needle)
    for i in range(len(hay) - k + 1):
        if hay[i:i + k] == needle and not (i > 0 and hay[i - 1] in NEGATIONS):
            return True
    return False


def match(answer: str, options: Sequence[Option], payload: str = "") -> Match | None:
    """The option an answer means, or None when it means none of them or is ambiguous."""
    if payload:
        for i, o in enumerate(options):
            if o.id == payload:
                return Match(i, "payload")
    n = normalize(answer)
    if not n:
        return _yesno_emoji(answer, options)
    for i, o in enumerate(options):
        if n in o.names:
            return Match(i, "exact")
    tokens = n.split()
    core = _strip_fillers(tokens)
    pos = _position(core, len(options))
    if pos is not None:
        return Match(pos, "position")
    yn = "yes" if (n in YES or " ".join(core) in YES) else "no" if (n in NO or " ".join(core) in NO) else ""
    if yn:
        hits = [i for i, o in enumerate(options) if o.yesno == yn]
        if len(hits) == 1:
            return Match(hits[0], yn)
    # An option named inside a longer answer; the longest name wins ("robe de soirée" over "robe").
    best: tuple[int, int] | None = None
    tie = False
    for i, o in enumerate(options):
        for name in o.names:
            words = name.split()
            if (len(name) >= 3 or name.isdigit()) and _contains(tokens, words):
                if best is None or len(words) > best[1]:
                    best, tie = (i, len(words)), False
                elif len(words) == best[1] and best[0] != i:
                    tie = True
    if best is not None and not tie:
        return Match(best[0], "contains")
    # Part of a longer title: "livraison" for "Livraison à domicile".
    words = [t for t in core if len(t) >= 4]
    if words and len(words) == len(core):
        hits = {i for i, o in enumerate(options) for name in o.names
                if " " in name and set(words) <= set(name.split())}
        if len(hits) == 1:
            return Match(hits.pop(), "partial")
    plain = [t for i, t in enumerate(core) if not (i and core[i - 1] in NEGATIONS) and t not in NEGATIONS]
    if len(plain) < len(core) and len(core) > 1:
        return None     # "pas homme": a negated answer never matches by a guess
    return _fuzzy(" ".join(core), core, options)


def _fuzzy(text: str, tokens: list[str], options: Sequence[Option]) -> Match | None:
    if len(text) < 3:
        return None
    scores = []
    for o in options:
        s = 0.0
        for name in o.names:
            if len(name) < 4:
                continue
            s = max(s, fuzz.ratio(text, name))
            if " " not in name:   # a typo of a one-word name inside a short sentence
                for t in tokens:
                    if len(t) >= 4 and len(tokens) <= 4:
                        s = max(s, fuzz.ratio(t, name))
        scores.append(s)
    if not scores:
        return None
    order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
    top = scores[order[0]]
    second = scores[order[1]] if len(order) > 1 else 0.0
    if top >= FUZZY_MIN and top - second >= FUZZY_LEAD:
        return Match(order[0], "fuzzy", top)
    return None


def _yesno_emoji(answer: str, options: Sequence[Option]) -> Match | None:
    kind = "yes" if any(e in answer for e in YES_EMOJI) else \
        "no" if any(e in answer for e in NO_EMOJI) else ""
    if not kind:
        return None
    hits = [i for i, o in enumerate(options) if o.yesno == kind]
    return Match(hits[0], kind) if len(hits) == 1 else None
