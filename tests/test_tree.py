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


# --------------------------------------------------------------------------- strict JSON


@pytest.mark.parametrize(("text", "message"), [
    ('{"seed": "x", "children": [], "children": [{"event": "E", "probability": 0.5}]}',
     "children: duplicate key in the same object"),
    ('{"seed": "S", "children": [{"event": "E", "probability": 0.5, "probability": 0.9}]}',
     "children[0].probability: duplicate key"),
    ('{"seed": "S", "children": [], "x": [{"y": 1, "y": 2}]}', "x[0].y: duplicate key"),
    ('{"seed": "S", "children": [], "a b": 1, "a b": 2}', '["a b"]: duplicate key'),
    ('{"seed": "S", "children": [{"event": "E", "probability": NaN}]}',
     "children[0].probability: NaN is not a valid JSON number"),
    ('{"seed": "S", "children": [{"event": "E", "probability": 0.5, "x": [1, -Infinity]}]}',
     "children[0].x[1]: -Infinity is not a valid JSON number"),
    ('{"seed": "S", "children": [], "note": Infinity}', "note: Infinity is not a valid"),
    ('{"seed": "\\ud800", "children": []}', "seed: string has a lone surrogate \\ud800 at index 0"),
    ('{"seed": "S", "children": [{"event": "ok \\udfff", "probability": 0.5}]}',
     "children[0].event: string has a lone surrogate \\udfff at index 3"),
    ('{"seed": "S", "children": [{"event": "E\ud800", "probability": 0.5}]}',  # a raw one
     "children[0].event: string has a lone surrogate"),
    ('{"seed": "S", "children": [], "\\ud800": 1}', 'key has a lone surrogate'),
])
def test_non_strict_json_names_its_path(text, message):
    with pytest.raises(TreeParseError) as info:
        parse_tree(text)
    assert message in str(info.value)
    assert str(info.value).isascii()  # the message never carries a surrogate itself


def test_prose_around_an_invalid_object_still_finds_a_valid_one():
    assert parse_tree('{"a": NaN} and then ' + json.dumps(GOOD)).seed == "Brexit vote passes"
    assert parse_tree('{"a": 1, "a": 2} and then ' + json.dumps(GOOD)).seed == "Brexit vote passes"


def test_surrogate_pairs_and_escapes_are_fine():
    tree = parse_tree('{"seed": "S \\ud83d\\ude00", "children": [{"event": "caf\\u00e9 \U0001f600",'
                      ' "probability": 0.5}]}')
    assert tree.seed == "S \U0001f600" and tree.children[0].event == "café \U0001f600"


@pytest.mark.parametrize(("text", "offset", "extra"), [
    ('{"seed": "S", "children": []}}', 29, "'}'"),
    ('{"seed": "S", "children": []} trailing', 29, "'trailing'"),
    ('  {"seed": "S", "children": []}\n]', 31, "']'"),
    ('{"seed": "S", "children": []}, "children": [{"event": "E", "probability": 1}]}', 29, "', \"children\""),
    ('{"seed": "S", "children": []} {"seed": "T", "children": []}', 29, "'{\"seed\""),
    ('{"note": "no children"} x', 23, "'x'"),
])
def test_trailing_text_after_a_bare_object_is_refused(text, offset, extra):
    with pytest.raises(TreeParseError) as info:
        parse_tree(text)
    message = str(info.value)
    assert message.startswith("unexpected text after the JSON object")
    assert f"ends at character {offset}" in message and extra in message


def test_trailing_text_inside_a_fenced_block_is_refused():
    with pytest.raises(TreeParseError, match="in the fenced block"):
        parse_tree("Here:\n```json\n" + json.dumps(GOOD) + "}\n```\nDone.")
    with pytest.raises(TreeParseError, match="in the fenced block"):
        parse_tree("```\n" + json.dumps(GOOD) + "\n// my notes\n```")


@pytest.mark.parametrize("text", [
    "```json\n" + json.dumps(GOOD) + "\n```",
    "Sure!\n```json\n" + json.dumps(GOOD) + "\n```\nHope it helps {sic}",
    "```\n" + json.dumps(GOOD) + "\n```\n```python\nprint(1)\n```",
    "```json\n" + json.dumps(GOOD),  # the closing fence cut off
    "Sure. " + json.dumps(GOOD) + " Done.",
    "Sure. " + json.dumps(GOOD) + "}} {sic}",  # an object inside prose: the rest is prose
    "```python\nx = 1\n```\n" + json.dumps(GOOD) + "\nDone.",  # after a closed block
    '{"note": "draft"} then ' + json.dumps(GOOD) + " and so on",
    "\n  " + json.dumps(GOOD) + "  \n\n",
])
def test_prose_and_fences_around_the_object_are_still_allowed(text):
    assert parse_tree(text).seed == "Brexit vote passes"


def test_huge_integers_are_out_of_range_not_an_overflow():
    text = '{"seed": "S", "children": [{"event": "E", "probability": 1' + "0" * 400 + "}]}"
    with pytest.raises(TreeParseError, match=r"children\[0\].probability: 1000.*is not in \[0, 1\]"):
        parse_tree(text)
    with pytest.raises(TreeParseError, match="invalid JSON"):  # past Python's int-digit limit
        parse_tree(text.replace("1" + "0" * 400, "1" + "0" * 5000))


def test_limits_refuse_bools():
    with pytest.raises(ValueError, match="max_depth must be a positive int"):
        TreeLimits(max_depth=True)


def test_huge_max_depth_fails_cleanly_on_deep_trees():
    node = '{"event": "E", "probability": 0.5, "children": ['
    text = '{"seed": "S", "children": [' + node * 2000 + "]}" * 2000 + "]}"
    with pytest.raises(TreeParseError):
        parse_tree(text,
                   limits=TreeLimits(max_depth=10_000, max_nodes=10_000, max_input_chars=10**7))


def test_repair_report_says_what_was_cut_and_closed():
    from psychohistory.tree import TruncationRepair, repair_truncated_report

    text = "Sure: " + json.dumps(GOOD)
    cut = text[: text.index("The pound") + 5]
    report = repair_truncated_report(cut)
    assert isinstance(report, TruncationRepair)
    assert report.start == 6 and report.closed == "]}"
    assert cut[report.end - 1] == "}" and report.cut_chars == len(cut) - report.end
    mended = cut[report.start:report.end] + report.closed
    assert parse_tree(mended) == report.tree
    assert str(report) == (f"cut {report.cut_chars} characters after character {report.end} "
                           "and closed ']}'")
    inner = json.dumps(GOOD)[:json.dumps(GOOD).index('"timeframe"') - 1]
    assert repair_truncated_report(inner) is None  # nothing before the first closed node
    full = json.dumps(GOOD)
    deeper = full[: full.index("}", full.index("Theresa May")) + 1] + ', {"event": "Bo'
    report = repair_truncated_report(deeper)
    assert report is not None and report.closed == "]}]}" and report.cut_chars == 15
    assert [v.node.event for v in report.tree.iter_nodes()] == [
        "David Cameron resigns", "Theresa May becomes prime minister"]
    assert repair_truncated_report(json.dumps(GOOD)) is None


def test_repair_applies_the_strict_rules_to_what_it_keeps():
    from psychohistory.tree import repair_truncated

    text = ('{"seed": "S", "children": [{"event": "A", "probability": 0.5, "probability": 0.6}, '
            '{"event": "B", "pro')
    assert repair_truncated(text) is None


def test_tree_from_dict_refuses_lone_surrogates_too():
    from psychohistory.tree import tree_from_dict

    decoded = json.loads('{"seed": "S", "children": [{"event": "E", "probability": 0.5, '
                         '"timeframe": "\\udc00"}]}')  # json.loads lets them through
    with pytest.raises(TreeParseError, match=r"children\[0\].timeframe: string has a lone"):
        tree_from_dict(decoded)
    with pytest.raises(TreeParseError, match="seed: string has a lone"):
        tree_from_dict({"seed": "\ud800", "children": []})


def test_every_real_case_as_a_tree_is_within_the_default_limits():
    """What happened, written as a tree, must be a valid answer (the format reward gave the
    honest tree of a depth-6 test case its penalty when the depth limit was 5)."""
    from psychohistory.bench.exploits import honest_tree
    from psychohistory.datasets import load_dataset

    for split in ("train", "dev", "test"):
        for case in load_dataset("historical", split=split):
            parse_tree(json.dumps(honest_tree(case)), seed=case.seed)
