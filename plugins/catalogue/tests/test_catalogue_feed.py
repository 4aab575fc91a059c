from causette_catalogue import Product, search

P = [Product(sku="a", name="Manteau", category="women", price=89, was=179),
     Product(sku="b", name="Pull", category="women", price=29, was=39),
     Product(sku="c", name="Jean", category="men", price=45, was=90),
     Product(sku="d", name="Sac", category="women", price=160, was=200)]


def test_search_filters_by_category_and_budget_best_discount_first():
    assert [p.sku for p in search(P, "women")] == ["a", "b", "d"]
    assert [p.sku for p in search(P, "women", "mid")] == ["a"]
    assert [p.sku for p in search(P, "", "low", 1)] == ["c"]
    assert search(P, "kids") == []
