import json

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
    # the pound node is under a false parent: unscored; the pound outcome is missed (0, y=1)
    expected = ((0.9 - 1) ** 2 + (0.5 - 1) ** 2 + 0.4 ** 2 + 0.3 ** 2 + 1.0) / 5
    assert m.brier == pytest.approx(expected)
    assert (m.n_nodes, m.n_scored, m.n_matched, m.n_missed) == (5, 4, 2, 1)
    assert m.coverage == pytest.approx(2 / 3) and m.precision == pytest.approx(0.5)
    assert m.coverage_by_method["exact"] == pytest.approx(2 / 3)
    assert m.coverage_by_method["none"] == pytest.approx(1 / 3)
    assert m.per_depth[1]["n"] == 3 and m.per_depth[2]["n"] == 2
    assert m.per_depth[2]["brier"] == pytest.approx((0.25 + 0.16) / 2)


def test_report_pools_trees_and_writes_outputs(tmp_path, brexit_case):
    report = ph.TreeEvaluator(matcher="exact").evaluate_many(
        [TREE, None], [brexit_case, brexit_case], skipped=["x.jsonl:3: bad"])
    assert report.n_trees == 2 and report.n_unparsable == 1 and report.n_skipped_records == 1
    # the unparsable tree counts as every outcome missed: 5 forecasts + 3 misses
    assert report.brier == pytest.approx(((0.1 ** 2 + 0.25 + 0.16 + 0.09 + 1.0) + 3.0) / 8)
    paths = report.write(tmp_path)
    assert {p.name for p in paths} == {"report.json", "report.md", "reliability.png",
                                       "per_depth.png"}
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["n_unparsable"] == 1
    assert "| brier |" in (tmp_path / "report.md").read_text()
    d = report.decomposition
    assert d["reliability"] - d["resolution"] + d["uncertainty"] == pytest.approx(report.brier)


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
    trees, _cases, skipped = load_trees(path, [brexit_case])
    assert len(trees) == 3 and trees[1] is None and trees[2] == TREE
    assert [s.split(":")[1] for s in skipped] == ["2", "3"]


def test_coverage_is_attributed_to_the_cascade_method(brexit_case):
    tree = parse_tree(json.dumps({"seed": "S", "children": [
        {"event": "David Cameron announces his resignation", "probability": 0.9},
        {"event": "The pound falls to a 31-year low against the US dollar", "probability": 0.8}]}))
    m = ph.TreeEvaluator(matcher=ph.get_matcher("cascade", embedding=False)).evaluate(tree, brexit_case)
    assert m.coverage_by_method["exact"] == pytest.approx(1 / 3)
    assert m.coverage_by_method["fuzzy"] == pytest.approx(1 / 3)
    assert m.coverage_by_method["none"] == pytest.approx(1 / 3)
