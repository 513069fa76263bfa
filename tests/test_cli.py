import json

from click.testing import CliRunner

from psychohistory.cli import cli
from psychohistory.tree import parse_tree


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_plugins_json(fresh_plugins):
    result = run("plugins", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert "calibration" in rows["psychohistory.default_plugins.rewards"]["rewards"]


def test_validate_reports_every_bad_record(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text('{"id": "a", "seed": "S", "outcomes": []}\n{"id": "b"}\n[]\n')
    result = run("validate", str(path))
    assert result.exit_code == 1
    assert f"{path}:2:" in result.output and f"{path}:3:" in result.output
    assert "1 good, 2 bad" in result.output


def test_datasets_list_and_export(tmp_path):
    assert "historical" in run("datasets", "list").output
    out = tmp_path / "h.jsonl"
    result = run("datasets", "export", "historical", str(out), "--split", "test")
    assert result.exit_code == 0 and out.exists()
    assert run("validate", str(out)).exit_code == 0


def test_evaluate_writes_report_and_counts_skipped(tmp_path, brexit_case):
    from psychohistory.cases import save_cases

    cases = save_cases([brexit_case], tmp_path / "cases.jsonl")
    tree = parse_tree('{"seed": "S", "children": [{"event": "Theresa May resigns", '
                      '"probability": 0.3}]}')
    trees = tmp_path / "trees.jsonl"
    trees.write_text(json.dumps({"case_id": "brexit-2016", "completion": tree.to_json()})
                     + "\nnot json\n")
    result = run("evaluate", str(trees), str(cases), "--matcher", "exact", "--out",
                 str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and (tmp_path / "out" / "reliability.png").exists()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_skipped_records"] == 1 and report["n_trees"] == 1


def test_bench_matchers_on_a_user_file(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps(r) for r in [
        {"left": "Fed raises rates", "right": "The Fed raises rates", "label": 1},
        {"left": "Fed raises rates", "right": "Fed cuts rates", "label": 0, "kind": "antonym"},
    ]) + "\n")
    out = tmp_path / "results.json"
    result = run("bench", "matchers", "--matcher", "exact", "--matcher", "fuzzy", "--pairs",
                 str(pairs), "--json", str(out))
    assert result.exit_code == 0, result.output
    names = {r["matcher"] for r in json.loads(out.read_text())}
    assert {"exact", "fuzzy", "raw rapidfuzz"} <= names
