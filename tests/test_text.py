from gateway.text import clip, split


def test_clip_marks_the_cut():
    assert clip("Femme", 20) == "Femme"
    assert clip("Chaussures de randonnée", 10) == "Chaussure…"
    assert len(clip("x" * 30, 10)) == 10


def test_split_prefers_line_then_word_boundaries_and_never_exceeds():
    text = "Bonjour Marie,\nvoici nos offres du jour pour les soldes d'hiver " + "x" * 50
    parts = split(text, 40)
    assert parts[0] == "Bonjour Marie,\nvoici nos offres du jour"
    assert all(len(p) <= 40 for p in parts)
    assert " ".join(p.replace("\n", " ") for p in parts).replace("  ", " ").startswith("Bonjour Marie, voici")
    assert split("y" * 85, 40) == ["y" * 40, "y" * 40, "y" * 5]
    assert split("", 10) == []
