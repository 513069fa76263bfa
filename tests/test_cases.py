import json

import pytest

from psychohistory import Case, CaseFormatError, Outcome, load_cases, save_cases
from psychohistory.cases import validate_cases_file


def test_depth_is_derived_from_parents(brexit_case):
    assert brexit_case.depth_of("o1") == 1
    assert brexit_case.depth_of("o2") == 2
    tree = brexit_case.to_tree()
    assert [v.depth for v in tree.iter_nodes()] == [1, 2, 1]


def test_dangling_parent_and_cycles_are_errors():
    with pytest.raises(ValueError, match="unknown parent"):
        Case(id="c", seed="S", outcomes=[Outcome(id="a", event="A", parent="zz")])
    with pytest.raises(ValueError, match="cycle"):
        Case(id="c", seed="S", outcomes=[Outcome(id="a", event="A", parent="b"),
                                         Outcome(id="b", event="B", parent="a")])
    with pytest.raises(ValueError, match="appears twice"):
        Case(id="c", seed="S", outcomes=[Outcome(id="a", event="A"), Outcome(id="a", event="B")])


def test_round_trip(tmp_path, brexit_case):
    path = save_cases([brexit_case], tmp_path / "cases.jsonl")
    assert load_cases(path) == [brexit_case]


def test_bad_lines_name_file_and_line(tmp_path, brexit_case):
    path = tmp_path / "cases.jsonl"
    good = brexit_case.model_dump_json()
    path.write_text(good + "\n\n{not json\n" + json.dumps({"id": "x", "seed": "S",
                    "outcomes": [{"id": "a", "event": "A", "parent": "q"}]}) + "\n[1]\n" + good + "\n")
    with pytest.raises(CaseFormatError) as info:
        load_cases(path)
    assert info.value.line == 3 and str(path) in str(info.value)
    cases, errors = validate_cases_file(path)
    assert len(cases) == 1
    assert [e.line for e in errors] == [3, 4, 5, 6]
    assert "unknown parent" in str(errors[1]) and "already used on line 1" in str(errors[3])


def test_save_is_atomic(tmp_path, brexit_case):
    path = tmp_path / "cases.jsonl"
    save_cases([brexit_case], path)

    def broken():
        yield brexit_case
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_cases(broken(), path)
    assert load_cases(path) == [brexit_case]
    assert not list(tmp_path.glob(".cases.jsonl.*"))
