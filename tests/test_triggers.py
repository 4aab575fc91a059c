from gateway.triggers import TriggerIndex, fold, trigger_conflicts


def test_fold_ignores_case_accents_and_spaces():
    assert fold("  SOLDÉS  d'Été ") == fold("soldes d'ete")
    assert fold("Noël") == "noel"


def test_index_maps_each_trigger_to_its_flow_and_first_wins():
    idx = TriggerIndex([
        ("sale", {"triggers": [{"type": "keyword", "any": ["Soldes", "SALES"]},
                               {"type": "referral", "ref": "sms-jan"}, {"type": "start"}]}),
        ("vip", {"triggers": [{"type": "keyword", "any": ["vip", "soldes"]}, {"type": "widget"}]}),
    ])
    assert idx.keywords == {"soldes": "sale", "sales": "sale", "vip": "vip"}
    assert idx.referrals == {"sms-jan": "sale"}
    assert idx.single == {"start": "sale", "widget": "vip"}
    assert [p.path for p in idx.conflicts] == ["$.triggers[0].any[1]"]


def test_conflicts_reported_for_the_flow_being_published_only():
    others = [("sale", {"triggers": [{"type": "start"}, {"type": "keyword", "any": ["Noël"]}]})]
    probs = trigger_conflicts("xmas", {"triggers": [{"type": "keyword", "any": ["noel"]},
                                                    {"type": "start"}]}, others)
    assert sorted(p.path for p in probs) == ["$.triggers[0].any[0]", "$.triggers[1]"]
    assert all(p.code == "trigger.conflict" and p.severity == "warning" for p in probs)
    # republishing the same flow is not a conflict with itself
    assert trigger_conflicts("sale", others[0][1], others) == []
