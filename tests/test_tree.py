import contextlib
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psychohistory import EventNode, ProbabilityTree, TreeLimits, TreeParseError, parse_tree

GOOD = {"seed": "Brexit vote passes", "children": [
    {"event": "David Cameron resigns", "probability": 0.7, "timeframe": "1 month",
     "children": [{"event": "Theresa May becomes prime minister", "probability": 0.5}]},
    {"event": "The pound falls to a 30-year low", "probability": 0.8}]}


def test_parses_plain_json():
    tree = parse_tree(json.dumps(GOOD))
    assert [v.node.event for v in tree.iter_nodes()] == [
        "David Cameron resigns", "Theresa May becomes prime minister",
        "The pound falls to a 30-year low"]
    assert [v.depth for v in tree.iter_nodes()] == [1, 2, 1]
    assert tree.children[0].timeframe == "1 month"


def test_finds_json_in_prose_and_fenced_blocks():
    text = "Here is my forecast:\n```json\n" + json.dumps(GOOD) + "\n```\nHope it helps {sic}"
    assert len(parse_tree(text)) == 3
    assert len(parse_tree("Sure. " + json.dumps(GOOD) + " Done.")) == 3


def test_prefers_the_object_with_children():
    text = '{"note": "draft"} then ' + json.dumps(GOOD)
    assert parse_tree(text).seed == "Brexit vote passes"


def test_round_trips_through_to_json():
    tree = parse_tree(json.dumps(GOOD))
    assert parse_tree(tree.to_json()) == tree


def test_seed_can_come_from_the_caller():
    tree = parse_tree('{"children": []}', seed="S")
    assert tree.seed == "S"
    with pytest.raises(TreeParseError, match="seed: missing"):
        parse_tree('{"children": []}')


@pytest.mark.parametrize(("text", "message"), [
    ('{"seed": "S", "children": [{"event": "E", "probability": 0.1}, '
     '{"event": "F", "probability": 1.7}]}', "children[1].probability: 1.7 is not in [0, 1]"),
    ('{"seed": "S", "children": [{"event": "E", "probability": -0.1}]}', "is not in [0, 1]"),
    ('{"seed": "S", "children": [{"event": "E", "probability": NaN}]}', "NaN is not a valid"),
    ('{"seed": "S", "children": [{"event": "E", "probability": Infinity}]}', "Infinity"),
    ('{"seed": "S", "children": [{"event": "E", "probability": "70%"}]}', "must be a number"),
    ('{"seed": "S", "children": [{"event": "E", "probability": true}]}', "must be a number"),
    ('{"seed": "S", "children": [{"event": "E"}]}', "children[0].probability: missing field"),
    ('{"seed": "S", "children": [{"probability": 0.5}]}', "children[0].event: missing field"),
    ('{"seed": "S", "children": [{"event": "  ", "probability": 0.5}]}', "event: is empty"),
    ('{"seed": "S", "children": {"event": "E"}}', "children: must be a list"),
    ('{"seed": "S", "children": [{"event": "E", "probability": 0.5', "not closed"),
    ("no JSON at all", "no JSON object"),
    ('{"seed": "S", "children": [1]}', "children[0]: must be an object"),
])
def test_malformed_input_names_path_and_problem(text, message):
    with pytest.raises(TreeParseError) as info:
        parse_tree(text)
    assert message in str(info.value)


def test_limits_are_enforced():
    deep = {"event": "E", "probability": 0.5}
    for _ in range(6):
        deep = {"event": "E", "probability": 0.5, "children": [deep]}
    with pytest.raises(TreeParseError, match="deeper than the limit of 3"):
        parse_tree(json.dumps({"seed": "S", "children": [deep]}), limits=TreeLimits(max_depth=3))
    many = {"seed": "S", "children": [{"event": f"E{i}", "probability": 0.1} for i in range(11)]}
    with pytest.raises(TreeParseError, match="more than 10 nodes"):
        parse_tree(json.dumps(many), limits=TreeLimits(max_nodes=10))
    long_event = {"seed": "S", "children": [{"event": "x" * 301, "probability": 0.1}]}
    with pytest.raises(TreeParseError, match="over the limit of 300"):
        parse_tree(json.dumps(long_event))
    with pytest.raises(TreeParseError, match="over the limit"):
        parse_tree("{" * 10 + "x" * 300_000)


def test_deep_nesting_and_megabyte_inputs_fail_fast():
    with pytest.raises(TreeParseError, match="nested more than"):
        parse_tree("[" + "{" * 100_000)
    junk = "{" + '"a": "b", ' * 15_000 + "}"
    with pytest.raises(TreeParseError):
        parse_tree(junk, limits=TreeLimits(max_input_chars=2_000_000))


def test_bytes_input():
    assert parse_tree(json.dumps(GOOD).encode()).seed == "Brexit vote passes"
    with pytest.raises(TreeParseError, match="not UTF-8"):
        parse_tree(b"\xff\xfe{")


def test_json_schema_describes_the_tree():
    schema = ProbabilityTree.json_schema()
    node = schema["$defs"]["EventNode"]
    assert node["properties"]["probability"]["maximum"] == 1.0
    assert set(node["required"]) == {"event", "probability"}


def test_pydantic_models_validate_direct_construction():
    with pytest.raises(ValueError):
        EventNode(event="E", probability=math.nan)
    with pytest.raises(ValueError):
        EventNode(event=" ", probability=0.5)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["seed", "children", "event", "probability", "x"]),
                      children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises_anything_else(text):
    with contextlib.suppress(TreeParseError):
        parse_tree(text)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_arbitrary_json_never_raises_anything_else(value):
    try:
        tree = parse_tree(json.dumps(value))
    except TreeParseError:
        return
    for view in tree.iter_nodes():
        assert 0.0 <= view.node.probability <= 1.0 and view.node.event.strip()


node = st.deferred(lambda: st.builds(
    dict, event=st.text(min_size=1, max_size=30).filter(str.strip),
    probability=st.floats(0, 1), children=st.lists(node, max_size=2)))


@settings(max_examples=100, deadline=None)
@given(st.lists(node, max_size=3), st.integers(0, 50))
def test_valid_trees_parse_and_truncations_fail_cleanly(children, cut):
    text = json.dumps({"seed": "S", "children": children})
    try:
        tree = parse_tree(text)
    except TreeParseError as exc:  # only the configured limits may refuse a valid tree
        assert "limit" in str(exc)
        return
    assert len(tree) == len(list(tree.iter_nodes()))
    if cut:
        with contextlib.suppress(TreeParseError):
            parse_tree(text[:-cut])


def test_repair_truncated_keeps_the_complete_nodes():
    from psychohistory.tree import repair_truncated

    text = json.dumps(GOOD)
    cut = text[: text.index("The pound") + 5]
    repaired = repair_truncated(cut)
    assert [v.node.event for v in repaired.iter_nodes()] == [
        "David Cameron resigns", "Theresa May becomes prime minister"]
    assert repair_truncated(text) is None  # complete: nothing to repair
    assert repair_truncated("no JSON") is None


@settings(max_examples=100, deadline=None)
@given(st.lists(node, min_size=1, max_size=3), st.integers(1, 400))
def test_repair_never_raises_and_only_keeps_real_nodes(children, cut):
    from psychohistory.tree import repair_truncated

    text = json.dumps({"seed": "S", "children": children})
    repaired = repair_truncated(text[:-cut] if cut < len(text) else text[:1])
    if repaired is not None:
        def events(nodes):
            return {n["event"].strip() for n in nodes} | {
                e for n in nodes for e in events(n["children"])}

        assert {v.node.event for v in repaired.iter_nodes()} <= events(children)
