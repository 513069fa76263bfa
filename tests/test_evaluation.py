import json

import numpy as np
import pytest

import psychohistory as ph
from psychohistory.evaluation import load_trees
from psychohistory.tree import parse_tree

TREE = parse_tree(json.dumps({"seed": "UK votes to leave", "children": [
    {"event": "David Cameron announces his resignation", "probability": 0.9, "children": [
        {"event": "Theresa May becomes prime minister", "probability": 0.5},
        {"event": "Boris Johnson becomes prime minister", "probability": 0.4}]},
    {"event": "Scotland leaves the United Kingdom", "probability": 0.3,
     "children": [{"event": "The pound falls to a 31-year low against the dollar", "probability": 1.0}]},
]}))


def test_metrics_by_hand(brexit_case):
    m = ph.TreeEvaluator(matcher="exact").evaluate(TREE, brexit_case)
    # scored: Cameron (0.9, y=1), May (0.5, y=1), Johnson (0.4, y=0), Scotland (0.3, y=0);
    # the pound node is under a false parent: unscored; the pound outcome is missed (0, y=1).
    # The sum of the losses is divided by the 3 outcomes (what happened), not the 5 forecasts
    expected = ((0.9 - 1) ** 2 + (0.5 - 1) ** 2 + 0.4 ** 2 + 0.3 ** 2 + 1.0) / 3
    assert m.brier == pytest.approx(expected)
    assert m.false_positive_mass == pytest.approx((0.4 + 0.3) / 3)
    assert (m.n_nodes, m.n_scored, m.n_matched, m.n_missed) == (5, 4, 2, 1)
    assert m.coverage == pytest.approx(2 / 3) and m.precision == pytest.approx(0.5)
    assert m.coverage_by_method["exact"] == pytest.approx(2 / 3)
    assert m.coverage_by_method["none"] == pytest.approx(1 / 3)
    # per depth: outcomes there (Cameron, pound at 1; May at 2), losses summed over them
    assert m.per_depth[1]["n"] == 2 and m.per_depth[2]["n"] == 1
    assert m.per_depth[2]["brier"] == pytest.approx((0.25 + 0.16) / 1)


def test_report_pools_trees_and_writes_outputs(tmp_path, brexit_case):
    report = ph.TreeEvaluator(matcher="exact").evaluate_many(
        [TREE, None], [brexit_case, brexit_case], skipped=["x.jsonl:3: bad"])
    assert report.n_trees == 2 and report.n_unparsable == 1 and report.n_skipped_records == 1
    # per case, then the mean over cases; the unparsable tree missed all 3 outcomes (Brier 1)
    first = (0.1 ** 2 + 0.25 + 0.16 + 0.09 + 1.0) / 3
    assert report.brier == pytest.approx((first + 1.0) / 2)
    pooled = ((0.1 ** 2 + 0.25 + 0.16 + 0.09 + 1.0) + 3.0) / 8
    assert report.diagnostics["brier (pooled over forecasts)"] == pytest.approx(pooled)
    lo, hi = report.intervals["brier"]
    assert lo <= report.brier <= hi
    paths = report.write(tmp_path)
    assert {p.name for p in paths} == {"report.json", "report.md", "reliability.png",
                                       "per_depth.png"}
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["n_unparsable"] == 1
    assert data["unparsable"] == [{"case_id": "brexit-2016", "error": "did not parse"}]
    assert [m["outcome"] for m in data["trees"][0]["matches"]] == ["o1", "o2"]
    markdown = (tmp_path / "report.md").read_text()
    assert "| brier |" in markdown and "every match" in markdown
    assert "| brexit-2016 | children[0] | David Cameron announces his resignation | 0.90 | o1 |" \
        in markdown
    d = report.decomposition
    assert d["reliability"] - d["resolution"] + d["uncertainty"] == pytest.approx(pooled)


def test_padding_with_junk_at_zero_moves_no_headline_metric(brexit_case):
    one_true = {"seed": "S", "children": [
        {"event": "David Cameron announces his resignation", "probability": 0.8}]}
    padded = json.loads(json.dumps(one_true))
    padded["children"] += [{"event": f"Unrelated event number {i}", "probability": 0.0}
                           for i in range(30)]
    evaluator = ph.TreeEvaluator(matcher="exact")
    plain, junk = (evaluator.evaluate_many([parse_tree(json.dumps(t))], [brexit_case])
                   for t in (one_true, padded))
    for key in ("brier", "log score", "ECE", "false-positive mass", "coverage"):
        assert junk.summary()[key] == pytest.approx(plain.summary()[key]), key
    # the pooled diagnostics are what padding games: they improve with 30 junk nodes
    assert junk.diagnostics["brier (pooled over forecasts)"] < \
        plain.diagnostics["brier (pooled over forecasts)"]


def test_load_trees_reports_bad_records(tmp_path, brexit_case):
    path = tmp_path / "trees.jsonl"
    lines = [
        json.dumps({"case_id": "brexit-2016", "completion": "Sure: " + TREE.to_json()}),
        "{broken",
        json.dumps({"case_id": "nope", "completion": "{}"}),
        json.dumps({"case_id": "brexit-2016", "completion": "no tree here"}),
        json.dumps({"case_id": "brexit-2016", **json.loads(TREE.to_json())}),
    ]
    path.write_text("\n".join(lines) + "\n")
    trees, _cases, skipped, errors = load_trees(path, [brexit_case])
    assert len(trees) == 3 and trees[1] is None and trees[2] == TREE
    assert errors[0] is None and errors[1].startswith("line 4: ")
    assert [s.split(":")[1] for s in skipped] == ["2", "3"]


def test_coverage_is_attributed_to_the_cascade_method(brexit_case, event_matcher):
    tree = parse_tree(json.dumps({"seed": "S", "children": [
        {"event": "David Cameron announces his resignation", "probability": 0.9},
        {"event": "Sterling will slide to its weakest level against the dollar in three decades",
         "probability": 0.8}]}))
    m = ph.TreeEvaluator(matcher=event_matcher).evaluate(tree, brexit_case)
    assert m.coverage_by_method["exact"] == pytest.approx(1 / 3)
    assert m.coverage_by_method["verifier"] == pytest.approx(1 / 3)
    assert m.coverage_by_method["none"] == pytest.approx(1 / 3)


def test_restating_the_seed_never_resolves_true(brexit_case, event_matcher):
    restated = parse_tree(json.dumps({"seed": "S", "children": [
        {"event": "united kingdom votes to leave the European Union.", "probability": 1.0},
        {"event": "David Cameron announces his resignation", "probability": 0.9}]}))
    m = ph.TreeEvaluator(matcher=event_matcher).evaluate(restated, brexit_case)
    assert m.n_restates_seed == 1 and m.n_matched == 1
    assert m.false_positive_mass == pytest.approx(1 / 3)


def test_a_near_copy_of_the_seed_is_a_restatement_whatever_the_verifier_says(event_matcher):
    # a base model's node in the results table (round 4): one word of the seed changed, which
    # the verifier scored 0.04 against the seed and 0.52 against an outcome, so it resolved true
    from psychohistory.cases import Case, Outcome
    from psychohistory.resolution import resolve

    case = Case(id="finland-sweden-nato-application-2022",
                seed="Finland and Sweden formally submit applications to join NATO",
                context="Applications follow Russia's invasion of Ukraine",
                outcomes=[Outcome(id="o2", event="NATO allies sign the accession protocols "
                                                 "for Finland and Sweden")])
    tree = parse_tree(json.dumps({"seed": case.seed, "children": [
        {"event": "Finnish and Sweden formally submit applications to join NATO",
         "probability": 0.5}]}))
    node = resolve(tree, case, event_matcher).nodes[0]
    assert node.restates_seed and node.outcome is None
    pairs = (["Finnish and Sweden formally submit applications to join NATO",
              "NATO allies sign the accession protocols for Finland and Sweden"],
             [case.seed, case.seed])
    assert event_matcher.score_anchor_pairs(*pairs).tolist() == pytest.approx(
        np.diag(event_matcher.score_anchors(pairs[0], [case.seed] * 2)).tolist())
    assert event_matcher.score_anchor_pairs(*pairs)[0] == 1.0


def test_near_copy_below_the_anchor_floor_is_refused():
    from psychohistory.matching.cascade import CascadeMatcher

    with pytest.raises(ValueError, match="near_copy"):
        CascadeMatcher(anchor_floor=0.5, near_copy=0.4)


@pytest.mark.slow
def test_the_results_tables_numbers_come_back_from_its_saved_trees(tmp_path, monkeypatch):
    # issue 14's table: `psychohistory evaluate` on a stage's saved trees gives its row, with
    # the default verifier the table was scored with; SFT only, the stage with matches and
    # false positives (SFT then GRPO writes empty trees, which any matcher scores alike)
    monkeypatch.setenv("PSYCHOHISTORY_VERIFIER", "verifier")
    import json as json_module
    from pathlib import Path

    from click.testing import CliRunner

    from psychohistory.cli import cli

    run = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "results_table"
    table = json_module.loads((run / "results_table.json").read_text())
    result = CliRunner().invoke(cli, ["evaluate", str(run / "trees" / "sft.jsonl"),
                                      "historical:test", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json_module.loads((tmp_path / "report.json").read_text())
    for key in ("brier", "log_score", "coverage", "false_positive_mass"):
        assert report[key] == pytest.approx(table["sft"][key], abs=1e-9), key
    assert table["sft"]["coverage"] > 0 and table["sft"]["false_positive_mass"] > 0
    assert report["n_unparsable"] == table["sft"]["unparsable"]
