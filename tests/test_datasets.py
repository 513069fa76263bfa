import json
from collections import Counter
from datetime import date

import pytest

from psychohistory import load_dataset
from psychohistory.datasets import dataset_path, generate_synthetic_cases


def test_synthetic_file_is_the_generator_output():
    assert load_dataset("synthetic") == generate_synthetic_cases(60, seed=0)
    assert generate_synthetic_cases(5, seed=3) != generate_synthetic_cases(5, seed=4)


DOMAINS = {"elections", "central_banks_markets", "wars_diplomacy", "mergers_bankruptcies",
           "public_health", "courts", "disasters", "technology", "energy_commodities", "labour",
           "science_space", "sport_governance"}


def _day(text):
    """The earliest day a partial date (YYYY or YYYY-MM) can mean."""
    return date.fromisoformat((text + "-01-01")[:10] if len(text) < 10 else text)


def test_historical_is_the_outcome_bank():
    cases = load_dataset("historical")
    outcomes = [o for c in cases for o in c.outcomes]
    assert len(cases) >= 500 and len(outcomes) >= 2500
    domains = Counter(c.domain for c in cases)
    assert set(domains) >= DOMAINS and min(domains[d] for d in DOMAINS) >= 15, domains
    full = sum(len(o.paraphrases) >= 3 and len(o.near_misses) >= 2 for o in outcomes)
    assert full >= 0.9 * len(outcomes)
    for case in cases:
        assert case.source and case.date and 3 <= len(case.outcomes) <= 7, case.id
        seed_day = _day(case.date)
        assert date(1990, 1, 1) <= seed_day <= date(2024, 12, 31), case.id
        for outcome in case.outcomes:
            if outcome.date and len(outcome.date) == 10 and len(case.date) == 10:
                assert _day(outcome.date) >= seed_day, (case.id, outcome.id)
    assert sum(any(o.parent for o in c.outcomes) for c in cases) >= len(cases) // 2


def test_bank_file_is_built_from_the_domain_files():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "scripts/build_bank.py"), "--check"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("up to date"), done.stdout[-2000:]


def test_splits_are_by_case_and_no_story_crosses_them():
    from psychohistory.datasets import split_of

    cases = load_dataset("historical")
    # a case takes the split of its story's first case (scripts/build_bank.py links cases that
    # share an event); most stories are one case, so most splits are their own id's
    own = sum(c.split == split_of(c.id) for c in cases)
    assert all(c.split in ("train", "dev", "test") for c in cases) and own >= 0.9 * len(cases)
    share = Counter(c.split for c in cases)
    assert 0.6 < share["train"] / len(cases) < 0.8 and share["dev"] and share["test"] >= 100
    parts = {s: load_dataset("historical", split=s) for s in ("train", "dev", "test")}
    assert sum(map(len, parts.values())) == len(cases)
    # a story told in two splits would share its seed or an outcome's text across them
    texts = {s: {t.casefold() for c in part for t in (c.seed, *(o.event for o in c.outcomes))}
             for s, part in parts.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["dev"]
    assert not texts["dev"] & texts["test"]


def test_bank_pairs_by_kind_and_split():
    from psychohistory.bench.matchers import load_pairs
    from psychohistory.datasets.pairs import count_kinds

    train, test = load_pairs("bank", split="train"), load_pairs("bank", split="test")
    kinds = count_kinds(train)
    for kind in ("paraphrase", "paraphrase_pair", "reversal", "swapped_entity", "changed_number",
                 "stage_of_story", "same_actor_other_event", "negation", "within_case",
                 "seed_restatement", "other_case"):
        assert kinds[kind] >= 50, (kind, kinds)
    assert {p.topic for p in train}.isdisjoint({p.topic for p in test})
    assert all(p.label == (p.kind in ("paraphrase", "paraphrase_pair")) for p in train)
    with pytest.raises(ValueError, match="split"):
        load_pairs("bank", split="heldout")


def test_outcome_texts_are_validated_with_their_line(tmp_path):
    from psychohistory.cases import validate_cases_file

    good = {"id": "o1", "event": "The Fed cuts rates", "paraphrases": ["The Fed will ease"],
            "near_misses": [{"event": "The Fed raises rates", "kind": "reversal"}]}
    bad = [dict(good, paraphrases=[" "]), dict(good, paraphrases=["a", "A"]),
           dict(good, near_misses=[{"event": "The Fed will ease", "kind": "reversal"}]),
           dict(good, near_misses=[{"event": "x", "kind": "opposite"}]),
           dict(good, date="2020-02-30")]
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"c{i}", "seed": "S", "outcomes": [o]})
                              for i, o in enumerate([good, *bad])) + "\n")
    cases, errors = validate_cases_file(path)
    assert len(cases) == 1 and [e.line for e in errors] == [2, 3, 4, 5, 6]
    messages = [str(e) for e in errors]
    assert "paraphrase 1 is blank" in messages[0] and "repeats paraphrase 1" in messages[1]
    assert "near_misses 1 repeats paraphrase 1" in messages[2]
    assert "'opposite' is not one of" in messages[3] and "not a real date" in messages[4]


def test_wheel_stays_small(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d",
                           str(tmp_path)], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.stat().st_size < 15e6, wheel.stat().st_size


def test_unknown_dataset_lists_the_bundled_ones():
    with pytest.raises(KeyError, match="historical"):
        load_dataset("nope")
    assert dataset_path("historical").exists()


def test_the_resolution_audit_meets_its_bar():
    # >= 1,500 labelled pairs of real trees on test cases, each pair once, kinds by role
    from pathlib import Path

    import psychohistory.datasets as datasets_pkg

    path = Path(datasets_pkg.__file__).parent / "data" / "event_pairs_audit.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 1500
    assert len({(r["predicted"], r["actual"]) for r in rows}) == len(rows)
    test_ids = {c.id for c in load_dataset("historical", split="test")}
    assert {r["topic"] for r in rows} <= test_ids
    assert {r["label"] for r in rows} == {0, 1}
    new = [r for r in rows if r["stage"].startswith("h200")]
    for r in new:
        allowed = ({"match"} if r["label"] else {"restates_seed", "other_outcome", "wrong_detail",
                                                   "vague", "unrelated"}) \
            if r["role"] == "outcome" else (
            {"anchor_restated"} if r["label"] else {"anchor_not_restated"})
        assert r["kind"] in allowed, r


def _train_verifier_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_verifier.py"
    spec = importlib.util.spec_from_file_location("train_verifier", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_other_authors_pairs_are_train_cases_only(tmp_path):
    script = _train_verifier_script()
    pairs = script.extra_pairs()  # the files in data/pairs_extra, whatever is there
    train = {c.id for c in load_dataset("historical", split="train")}
    assert {p.topic for p in pairs} <= train
    assert all(p.left != p.right for p in pairs)
    test_case = load_dataset("historical", split="test")[0]
    (tmp_path / "pairs_9.jsonl").write_text(json.dumps(
        {"case_id": test_case.id, "outcome_id": test_case.outcomes[0].id, "predicted": "x",
         "label": 1, "kind": "paraphrase"}) + "\n")
    with pytest.raises(SystemExit, match=r"pairs_9\.jsonl:1: .* not an outcome of a train"):
        script.extra_pairs(tmp_path)


def test_free_form_pairs_pair_each_forecast_with_both_texts_and_stop_on_a_bad_line(tmp_path):
    script = _train_verifier_script()
    case = load_dataset("historical", split="train")[0]
    outcome = case.outcomes[0]
    rows = [
        {"case_id": case.id, "anchor": "seed", "predicted": "the seed, restated", "label": 1,
         "kind": "seed_restatement"},
        {"case_id": case.id, "outcome_id": outcome.id, "actual": "my own report of it",
         "predicted": "a forecast of it", "label": 1, "kind": "paraphrase"},
        {"case_id": case.id, "outcome_id": outcome.id, "actual": "my own report of it",
         "predicted": "the opposite of it", "label": 0, "kind": "reversal"},
    ]
    (tmp_path / "pairs_1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = script.free_pairs(tmp_path)
    got = {(p.left, p.right, p.label, p.kind) for p in pairs}
    assert ("the seed, restated", case.seed, 1, "free_seed_restatement") in got
    assert ("a forecast of it", "my own report of it", 1, "free_paraphrase") in got
    assert ("a forecast of it", outcome.event, 1, "free_paraphrase") in got
    assert ("the opposite of it", outcome.event, 0, "free_reversal") in got
    assert ("my own report of it", outcome.event, 1, "free_report") in got  # once per report
    assert sum(p.kind == "free_report" for p in pairs) == 1
    # a seed restatement is another event than what followed the seed
    assert any(p.kind == "free_seed_vs_outcome" and p.label == 0 for p in pairs)
    # for choosing, only what the authors wrote
    assert {p.kind for p in script.free_pairs(tmp_path, training=False)} == {
        "free_seed_restatement", "free_paraphrase", "free_reversal"}

    bad = {**rows[1], "label": 1, "kind": "reversal"}
    (tmp_path / "pairs_2.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(SystemExit, match=r"pairs_2\.jsonl:1: label 1 with kind 'reversal'"):
        script.free_pairs(tmp_path)
    (tmp_path / "pairs_2.jsonl").write_text(json.dumps({**rows[2], "predicted": outcome.event}) + "\n")
    with pytest.raises(SystemExit, match=r"pairs_2\.jsonl:1: a negative that copies the outcome"):
        script.free_pairs(tmp_path)
    # a restatement identical to the seed is no pair (nothing to learn), not an error
    (tmp_path / "pairs_2.jsonl").write_text(json.dumps({**rows[0], "predicted": case.seed}) + "\n")
    assert sum(p.kind == "free_seed_restatement" for p in script.free_pairs(tmp_path)) == 1


def test_near_copies_keep_every_figure_and_are_the_same_event():
    import random
    import re

    script = _train_verifier_script()
    cases = load_dataset("historical", split="train")
    pairs = [p for p in script.style_pairs(cases, random.Random(0))
             if p.kind in ("near_copy", "near_copy_anchor")]
    assert len(pairs) > 2 * len(cases)
    for p in pairs:
        assert p.label == 1 and p.left != p.right
        assert re.findall(r"\d+", p.left) == re.findall(r"\d+", p.right)
        assert abs(len(p.left.split()) - len(p.right.split())) <= 1


def test_free_form_pairs_in_the_repository_are_on_their_split_only():
    script = _train_verifier_script()
    root = script.ROOT / "data"
    for folder, split in (("pairs_free", "train"), ("pairs_hard", "train"), ("pairs_dev2", "dev"),
                          ("pairs_dev3", "dev"), ("pairs_dev4", "dev")):
        ids = {c.id for c in load_dataset("historical", split=split)}
        pairs = script.free_pairs(root / folder, split=split)
        assert {p.topic for p in pairs} <= ids


def test_pair_files_name_the_line_that_is_not_a_json_object(tmp_path):
    script = _train_verifier_script()
    (tmp_path / "pairs_1.jsonl").write_text('{"case_id": "x"\n')
    with pytest.raises(SystemExit, match=r"^pairs_1\.jsonl:1: invalid JSON"):
        script.free_pairs(tmp_path)
    (tmp_path / "pairs_1.jsonl").write_text("\n[1, 2]\n")
    with pytest.raises(SystemExit, match=r"^pairs_1\.jsonl:2: expected a JSON object, got list"):
        script.extra_pairs(tmp_path)


def _press_row(**overrides):
    row = {"topic": "made-up-story-2001", "seed": "A small town elects a new mayor",
           "actual": "The new mayor bans cars from the old town centre",
           "predicted": "The town hall is expected to pedestrianise its historic core",
           "label": 1, "kind": "paraphrase"}
    row.update(overrides)
    return row


def test_press_pairs_stop_on_a_bad_line_naming_it(tmp_path):
    script = _train_verifier_script()
    (tmp_path / "avoid_stories.txt").write_text("brexit-2016\n")
    cases = [
        ({"label": 1, "kind": "reversal"}, r"pairs_1\.jsonl:2: label 1 with kind 'reversal'"),
        ({"predicted": "  "}, r"pairs_1\.jsonl:2: .*non-blank"),
        ({"predicted": "the new mayor bans cars from the old town centre"},
         r"pairs_1\.jsonl:2: the forecast copies the report"),
        ({"topic": "brexit-2016"}, r"pairs_1\.jsonl:2: story 'brexit-2016' is in avoid"),
        ({"note": "x"}, r"pairs_1\.jsonl:2: keys"),
    ]
    for overrides, message in cases:
        (tmp_path / "pairs_1.jsonl").write_text(
            json.dumps(_press_row()) + "\n" + json.dumps(_press_row(**overrides)) + "\n")
        with pytest.raises(SystemExit, match=message):
            script.press_rows(tmp_path)


def test_press_pairs_leave_out_stories_close_to_held_out_ones(tmp_path):
    # a story the bank's test split tells (its seed, reworded by one word) is not trained on
    script = _train_verifier_script()
    test_case = load_dataset("historical", split="test")[0]
    rows = [_press_row(),
            _press_row(topic="a-test-story", seed=test_case.seed.replace(" ", "  ", 1),
                       actual=test_case.outcomes[0].event + " at last",
                       predicted="something a forecaster wrote")]
    (tmp_path / "pairs_1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = script.press_pairs(tmp_path)
    assert [(p.topic, p.label, p.kind) for p in pairs] == [
        ("press:made-up-story-2001", 1, "press_paraphrase")]


def test_press_pairs_in_the_repository_load_clear_of_every_held_out_story():
    script = _train_verifier_script()
    rows = script.press_rows()
    pairs = script.press_pairs()
    assert len(rows) >= 3000 and 0 < len(pairs) < len(rows)  # some stories are held out
    avoid = set((script.PRESS / "avoid_stories.txt").read_text().split())
    assert not {p.topic.removeprefix("press:") for p in pairs} & avoid
