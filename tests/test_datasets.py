from collections import Counter
from datetime import date

import pytest

from psychohistory import load_dataset
from psychohistory.datasets import dataset_path, generate_synthetic_cases


def test_synthetic_file_is_the_generator_output():
    assert load_dataset("synthetic") == generate_synthetic_cases(60, seed=0)
    assert generate_synthetic_cases(5, seed=3) != generate_synthetic_cases(5, seed=4)


def test_historical_is_real_and_complete():
    cases = load_dataset("historical")
    assert len(cases) >= 40
    domains = Counter(c.domain for c in cases)
    for domain in ("election", "referendum", "financial_crisis", "pandemic", "war", "merger",
                   "disaster"):
        assert domains[domain] >= 3, domain
    for case in cases:
        assert case.source and case.date
        seed_day = date.fromisoformat(case.date)
        assert date(1990, 1, 1) <= seed_day <= date(2024, 12, 31)
        for outcome in case.outcomes:
            day = date.fromisoformat(outcome.date)
            assert day >= seed_day, (case.id, outcome.id)
            if outcome.parent:
                assert day >= date.fromisoformat(case.outcome(outcome.parent).date)
    assert sum(any(o.parent for o in c.outcomes) for c in cases) >= len(cases) // 2


def test_splits_are_disjoint_and_stable():
    train, test = load_dataset("historical", split="train"), load_dataset("historical", split="test")
    assert train and test and not {c.id for c in train} & {c.id for c in test}


def test_unknown_dataset_lists_the_bundled_ones():
    with pytest.raises(KeyError, match="historical"):
        load_dataset("nope")
    assert dataset_path("historical").exists()
