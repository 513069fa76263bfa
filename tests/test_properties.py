"""Properties of every entry point that reads text we do not control.

* ``parse_tree`` (and ``repair_truncated_report``): any string gives a valid tree within the
  limits or a ``TreeParseError``, never another exception, in bounded time;
* ``load_cases``: any line gives cases or a ``CaseFormatError`` whose ``.line`` is set;
* each built-in reward and the default composite: any completion gives a finite float, or
  the defined penalty where the completion is not a tree;
* resolution with the exact matcher: each outcome matched at most once, a child scored
  exactly when its parent came true, every unmatched outcome missed, missed + matched =
  all outcomes.

Each property is a ``check_*`` function of one input, so ``benchmarks/fuzz.py`` runs the same
checks on the same strategies at 10,000+ inputs each. Here each runs
``PSYCHOHISTORY_FUZZ_EXAMPLES`` examples (200 unless set), keeping ``make test`` fast.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import psychohistory as ph
from psychohistory.cases import Case, CaseFormatError, Outcome, load_cases
from psychohistory.matching.exact import ExactMatcher, normalize
from psychohistory.resolution import Resolution, resolve, resolve_many
from psychohistory.rewards import DEFAULT_WEIGHTS, CompositeReward
from psychohistory.tree import (
    DEFAULT_LIMITS,
    ProbabilityTree,
    TreeLimits,
    TreeParseError,
    parse_tree,
    repair_truncated,
    repair_truncated_report,
    tree_from_dict,
)

EXAMPLES = int(os.environ.get("PSYCHOHISTORY_FUZZ_EXAMPLES", "200"))
settings.register_profile(
    "psychohistory-properties", max_examples=EXAMPLES, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much, HealthCheck.large_base_example])
PROFILE = settings.get_profile("psychohistory-properties")

# Generous: a 200,000-character input takes well under 1 s on a shared 2-core machine.
# benchmarks/fuzz.py reports every input over its own (tighter) budget as a hang.
TIME_BUDGET_S = 5.0


# --------------------------------------------------------------------------- strategies

# every code point, lone surrogates included (hypothesis leaves them out by default)
any_char = st.characters(exclude_categories=())
TOKENS = ['{', '}', '[', ']', ':', ',', '"', '\\', '"seed"', '"children"', '"event"',
          '"probability"', '"timeframe"', '"x"', '"E"', '"S"', "0.5", "1.7", "-0.1", "1e999",
          "1" + "0" * 400, "NaN", "Infinity", "-Infinity", "true", "null", "[]", "{}",
          '"\\ud800"', '"\\udc00"', '"\\ud83d\\ude00"', '"caf\\u00e9"', "\ud800", "\u00e9",
          "```", "```json\n", "\n", " ", "Sure! ", "Done.", "'", "\x00"]
token_soup = st.lists(st.sampled_from(TOKENS) | st.text(any_char, max_size=4),
                      max_size=60).map("".join)

EVENT_WORDS = ["A", "a", "A.", "B", "b  ", "C", "D", "S"]  # exact-matcher duplicates on purpose
event_text = st.sampled_from(EVENT_WORDS) | st.text(any_char, min_size=1, max_size=12)
probability = (st.floats(0, 1) | st.sampled_from([0, 1, 0.0, 1.0])
               | st.floats(allow_nan=False, allow_infinity=False) | st.integers(-3, 3))


def _node(children: st.SearchStrategy[list[dict[str, Any]]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"event": event_text, "probability": probability},
        optional={"children": children, "timeframe": st.text(max_size=8) | st.integers(),
                  "note": st.none() | st.booleans()})


tree_nodes = st.recursive(st.lists(_node(st.just([])), max_size=3),
                          lambda kids: st.lists(_node(kids), max_size=3), max_leaves=25)
tree_dicts = st.fixed_dictionaries({"children": tree_nodes},
                                   optional={"seed": st.sampled_from(["S", "", " ", 3]) | event_text})


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """``base`` text, cut short, with a token put in, a slice taken out, or left as it is."""
    text = draw(base)
    kind = draw(st.sampled_from(["keep", "cut", "insert", "delete", "repeat"]))
    if not text or kind == "keep":
        return text
    i = draw(st.integers(0, len(text)))
    if kind == "cut":
        return text[:i]
    if kind == "insert":
        return text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
    j = draw(st.integers(i, len(text)))
    return text[:i] + text[j:] if kind == "delete" else text[:j] + text[i:j] + text[j:]


def _wrap(pair: tuple[str, str]) -> str:
    return pair[0].replace("{}", pair[1], 1) if "{}" in pair[0] else pair[0] + pair[1]


WRAPPERS = ["{}", "Sure! {}", "```json\n{}\n```", "Here:\n```\n{}\n```\nDone.", "{} Done.",
            "{}}", "  {}\n", "Sure. {} {}", '{"note": 1} {}', "```json\n{}"]
tree_texts = mutated(st.tuples(st.sampled_from(WRAPPERS),
                               tree_dicts.map(json.dumps)).map(_wrap))
# valid trees in the places a model puts them, with events the reward case's outcomes match
good_tree_texts = st.tuples(
    st.sampled_from(["{}", "Sure! {} Done.", "```json\n{}\n```", "Here:\n```\n{}\n```\nOK."]),
    st.deferred(lambda: _plain_nodes(4, EVENT_WORDS)).map(
        lambda kids: json.dumps({"seed": "S", "children": kids}))).map(_wrap)

# very long inputs: a fragment repeated up to about the default input limit
long_texts = st.tuples(st.sampled_from([*TOKENS, '{"event": "E", "probability": 0.5, "children": [',
                                                 '{"a": 1}', "x {} ", '"a": NaN, ']),
                       st.integers(1_000, 60_000)).map(lambda t: (t[0] * t[1])[:210_000])
deep_texts = st.tuples(st.sampled_from(["{", "[", '{"children": [', '{"a": [', "{[", "[{"]),
                       st.integers(10, 20_000)).map(lambda t: "{" + t[0] * t[1])

model_output = st.one_of(st.text(any_char, max_size=300), token_soup, tree_texts,
                         good_tree_texts, mutated(good_tree_texts), long_texts, deep_texts)


# --------------------------------------------------------------------------- parse_tree


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_tree(tree: ProbabilityTree, limits: TreeLimits = DEFAULT_LIMITS) -> None:
    """What every tree ``parse_tree`` returns satisfies."""
    assert isinstance(tree, ProbabilityTree)
    assert tree.seed and tree.seed == tree.seed.strip() and _encodable(tree.seed)
    assert len(tree) <= limits.max_nodes and tree.depth <= limits.max_depth
    for view in tree.iter_nodes():
        node = view.node
        assert isinstance(node.probability, float) and 0.0 <= node.probability <= 1.0
        assert node.event and node.event == node.event.strip() and _encodable(node.event)
        assert len(node.event) <= limits.max_event_chars
    written = tree.to_json()  # what we write, we read (it may be longer: 1 -> 1.0)
    room = dataclasses.replace(limits, max_input_chars=max(len(written), limits.max_input_chars))
    assert parse_tree(written, limits=room) == tree


def check_parse_tree(text: str | bytes, limits: TreeLimits | None = None) -> None:
    """A valid tree within the limits, or a ``TreeParseError``; nothing else, quickly."""
    start = time.perf_counter()
    try:
        tree = parse_tree(text, limits=limits)
    except TreeParseError as exc:
        assert str(exc) and _encodable(str(exc)), repr(str(exc))
    else:
        check_tree(tree, limits or DEFAULT_LIMITS)
    assert time.perf_counter() - start < TIME_BUDGET_S


def check_repair(text: str) -> None:
    """``repair_truncated_report`` never raises, and its record reproduces its tree."""
    report = repair_truncated_report(text)
    assert (report.tree if report else None) == repair_truncated(text)
    if report is None:
        return
    check_tree(report.tree)
    assert 0 <= report.start < report.end <= len(text)
    assert report.cut_chars == len(text) - report.end and set(report.closed) <= set("]}")
    assert parse_tree(text[report.start:report.end] + report.closed) == report.tree


@PROFILE
@given(model_output)
def test_parse_tree_gives_a_tree_or_a_tree_parse_error(text):
    check_parse_tree(text)


@PROFILE
@given(model_output | st.binary(max_size=200))
def test_parse_tree_takes_bytes_too(data):
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    check_parse_tree(raw)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(TreeParseError, match="input is not UTF-8"):
            parse_tree(raw)


@PROFILE
@given(model_output)
def test_repair_never_raises_and_reports_what_it_mended(text):
    check_repair(text)


def _chain(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"event": "E", "probability": 0.5}
    for _ in range(depth - 1):
        node = {"event": "E", "probability": 0.5, "children": [node]}
    return {"seed": "S", "children": [node]}


@PROFILE
@given(st.integers(1, 40), st.integers(1, 12), st.integers(1, 150), st.integers(1, 150))
def test_limits_apply_exactly(depth, max_depth, nodes, max_nodes):
    limits = TreeLimits(max_depth=max_depth, max_nodes=max(max_nodes, 40))
    text = json.dumps(_chain(depth))
    if depth <= max_depth:
        assert parse_tree(text, limits=limits).depth == depth
    else:
        with pytest.raises(TreeParseError, match=r"deeper than the limit|nested more than"):
            parse_tree(text, limits=limits)
    flat = json.dumps({"seed": "S", "children": [
        {"event": f"E{i}", "probability": 0.5} for i in range(nodes)]})
    limits = TreeLimits(max_nodes=max_nodes)
    if nodes <= max_nodes:
        assert len(parse_tree(flat, limits=limits)) == nodes
    else:
        with pytest.raises(TreeParseError, match=f"more than {max_nodes} nodes"):
            parse_tree(flat, limits=limits)


@PROFILE
@given(tree_texts, st.integers(0, 400), st.integers(1, 300), st.integers(1, 400),
       st.integers(1, 400))
def test_input_and_event_length_limits_apply(text, padding, max_chars, length, max_event):
    padded = text + " " * padding
    limits = TreeLimits(max_input_chars=max_chars)
    if len(padded) > max_chars:
        with pytest.raises(TreeParseError, match=f"over the limit of {max_chars:,}"):
            parse_tree(padded, limits=limits)
    else:
        check_parse_tree(padded, limits)
    tree = json.dumps({"seed": "S", "children": [{"event": "x" * length, "probability": 0.5}]})
    limits = TreeLimits(max_event_chars=max_event)
    if length > max_event:
        with pytest.raises(TreeParseError, match=f"children.0..event: is {length} characters"):
            parse_tree(tree, limits=limits)
    else:
        assert parse_tree(tree, limits=limits).children[0].event == "x" * length


HOSTILE = {
    "open braces": "{" * 199_000,
    "open brackets": "{" + "[" * 199_000,
    "nested children": '{"seed": "S", "children": [' + '{"event": "E", "probability": 0.5, "children": [' * 4_000,
    "nested lists": '{"children": ' + "[" * 90_000 + "]" * 90_000 + "}",
    "quotes": '"' * 199_000,
    "backslashes": '{"' + "\\" * 199_000,
    "many empty objects": "{}" * 99_000,
    "objects in prose": 'x {"a": 1} ' * 18_000,
    "many nodes": '{"seed": "S", "children": [' + '{"event": "E", "probability": 0.5},' * 5_000,
    "duplicate keys": "{" + ", ".join(['"a": 1'] * 25_000) + "}",
    "NaN list": '{"children": [' + "NaN, " * 39_000 + "NaN]}",
    "lone surrogates": '{"seed": "' + "\\ud800" * 33_000 + '", "children": []}',
    "fences": "```" * 66_000,
    "fence and spaces": "```" + " " * 199_000 + "{}x",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_inputs_near_the_size_limit_fail_fast(name):
    text = HOSTILE[name]
    assert len(text) <= DEFAULT_LIMITS.max_input_chars
    start = time.perf_counter()
    with pytest.raises(TreeParseError):
        parse_tree(text)
    check_repair(text)
    assert time.perf_counter() - start < TIME_BUDGET_S
    with pytest.raises(TreeParseError, match="over the limit of 200,000"):
        parse_tree(text + " " * (200_001 - len(text)))


# --------------------------------------------------------------------------- load_cases

case_keys = ["id", "seed", "context", "date", "domain", "source", "split", "outcomes", "event",
             "parent", "paraphrases", "near_misses", "kind", "x"]
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(any_char, max_size=12)
    | st.sampled_from(["o1", "o2", "2016-06-23", "2016-02-30", "train", "reversal"]),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(case_keys), kids,
                                                              max_size=6),
    max_leaves=30)
outcome_records = st.fixed_dictionaries(
    {"id": st.sampled_from(["o1", "o2", "o3"]), "event": event_text},
    optional={"parent": st.sampled_from(["o1", "o2", "o3", "o9"]),
              "date": st.sampled_from(["2016", "2016-06", "2016-06-23", "2016-13", "16"]),
              "paraphrases": st.lists(event_text, max_size=2),
              "near_misses": st.lists(st.fixed_dictionaries(
                  {"event": event_text, "kind": st.sampled_from(["reversal", "negation", "x"])}),
                  max_size=2)})
case_records = st.fixed_dictionaries(
    {"id": st.sampled_from(["c1", "c2", ""]), "seed": event_text},
    optional={"outcomes": st.lists(outcome_records, max_size=4), "context": st.text(max_size=5),
              "split": st.sampled_from(["train", "dev", "test", "other"]),
              "date": st.sampled_from(["2016-06-23", "2016-02-29", "2015-02-29"]),
              "extra": st.integers()})
case_line = st.one_of(
    st.text(any_char, max_size=200),
    token_soup,
    json_values.map(json.dumps),
    mutated(case_records.map(lambda r: json.dumps(r, ensure_ascii=bool(len(r) % 2)))),
    st.binary(max_size=100),
).map(lambda line: line.replace("\n", " ") if isinstance(line, str) else line.replace(b"\n", b" "))


def check_load_cases(lines: list[str | bytes], path: Path) -> None:
    """Cases, or a ``CaseFormatError`` naming the file and a line that exists."""
    raw = [line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
           for line in lines]
    path.write_bytes(b"\n".join(raw) + b"\n")
    try:
        cases = load_cases(path)
    except CaseFormatError as exc:
        assert isinstance(exc.line, int) and 1 <= exc.line <= len(lines), exc.line
        assert exc.path == str(path) and raw[exc.line - 1].strip()
    else:
        assert all(isinstance(case, Case) for case in cases)
        assert len(cases) == sum(1 for line in raw if line.strip())


@pytest.fixture(scope="module")
def cases_path(tmp_path_factory):
    return tmp_path_factory.mktemp("properties") / "cases.jsonl"


@PROFILE
@given(st.lists(case_line, min_size=1, max_size=3))
def test_load_cases_gives_cases_or_a_case_format_error_with_its_line(cases_path, lines):
    check_load_cases(lines, cases_path)


def test_load_cases_deeply_nested_line(cases_path):
    check_load_cases(["[" * 100_000], cases_path)


def test_load_cases_huge_integer(cases_path):
    check_load_cases(['{"id": 1' + "0" * 5000 + "}"], cases_path)


# --------------------------------------------------------------------------- rewards

REWARD_CASE = Case(id="properties", seed="S", context="B", outcomes=[
    Outcome(id="o1", event="A"), Outcome(id="o2", event="C", parent="o1"),
    Outcome(id="o3", event="D")])
TREE_REWARDS = ("calibration", "sharpness", "diversity")


def build_rewards() -> dict[str, Any]:
    """Each built-in reward as ``get_reward`` builds it, and the default composite."""
    rewards: dict[str, Any] = {
        name: ph.get_reward(name, **({} if name == "format" else {"matcher": "exact"}))
        for name in DEFAULT_WEIGHTS}
    rewards["composite"] = CompositeReward([rewards[name] for name in DEFAULT_WEIGHTS],
                                           list(DEFAULT_WEIGHTS.values()))
    return rewards


REWARDS = build_rewards()


def _parses(text: str) -> bool:
    try:
        parse_tree(text, seed=REWARD_CASE.seed)
    except TreeParseError:
        return False
    return True


def check_reward(name: str, completion: str, reward: Any = None) -> None:
    """A finite float; the malformed penalty (or format's truncated score) for a non-tree."""
    reward = reward or REWARDS[name]
    values = reward([completion], case=[REWARD_CASE])
    assert isinstance(values, list) and len(values) == 1
    value = values[0]
    assert isinstance(value, float) and math.isfinite(value), value
    parsed = _parses(completion)
    worst = -(DEFAULT_LIMITS.max_nodes + len(REWARD_CASE.outcomes)) / len(REWARD_CASE.outcomes)
    if name == "format":
        expected = 1.0 if parsed else 0.0 if repair_truncated(completion, seed="(seed)") else -1.0
        assert value == expected
    elif name == "composite":
        parts = reward.last_values
        assert value == pytest.approx(sum(w * parts[n][0] for n, w in DEFAULT_WEIGHTS.items()))
        if not parsed:
            assert all(parts[n] == [-1.0] for n in TREE_REWARDS) and parts["format"][0] <= 0.0
    elif not parsed:
        assert value == -1.0
    elif name == "calibration":
        assert worst <= value <= 0.0
    elif name == "sharpness":
        assert worst <= value <= 0.25
    else:
        assert -1.0 < value <= 0.0


@pytest.mark.parametrize("name", [*DEFAULT_WEIGHTS, "composite"])
@PROFILE
@given(completion=model_output)
def test_rewards_give_a_finite_float_or_the_penalty(name, completion):
    check_reward(name, completion)


# --------------------------------------------------------------------------- resolution

def _plain_nodes(depth: int, events: list[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Valid nodes, ``depth`` levels at most, with events from ``events``."""
    node = {"event": st.sampled_from(events), "probability": st.floats(0, 1)}
    if depth > 1:
        node["children"] = _plain_nodes(depth - 1, events)
    return st.lists(st.fixed_dictionaries(node), max_size=3 if depth > 2 else 2)


resolution_nodes = _plain_nodes(4, EVENT_WORDS)


@st.composite
def resolution_cases(draw: st.DrawFn) -> Case:
    outcomes: list[Outcome] = []
    for i in range(draw(st.integers(0, 7))):
        parent = draw(st.none() | st.integers(0, i - 1)) if i else None
        outcomes.append(Outcome(id=f"o{i}", event=draw(st.sampled_from(EVENT_WORDS)),
                                parent=None if parent is None else f"o{parent}"))
    return Case(id="r", seed=draw(st.sampled_from(["S", "A", "seed"])),
                context=draw(st.sampled_from(["", "B", "context"])), outcomes=outcomes)


resolution_inputs = st.tuples(resolution_nodes.map(lambda kids: {"seed": "S", "children": kids}),
                              resolution_cases())
MATCHER = ExactMatcher()


def check_resolution(tree_dict: dict[str, Any], case: Case) -> Resolution:
    """The invariants of resolving a tree against a case with the exact matcher."""
    tree = tree_from_dict(tree_dict)
    result = resolve(tree, case, MATCHER)
    views = list(tree.iter_nodes())
    assert [n.path for n in result.nodes] == [v.path_str for v in views]
    by_path = {n.path: n for n in result.nodes}
    matched = [n.outcome for n in result.nodes if n.outcome is not None]
    counts = Counter(matched)
    assert all(c == 1 for c in counts.values()), counts  # each outcome matched at most once
    events = {o.id: o.event for o in case.outcomes}
    for node in result.nodes:
        parent = by_path.get(node.path.rsplit(".", 1)[0]) if "." in node.path else None
        # scored exactly when the parent came true (the seed's children always are)
        assert node.scored == (parent is None or parent.happened), node
        if node.outcome is not None:
            assert node.happened and node.scored and not node.restates_seed
            assert normalize(node.event) == normalize(events[node.outcome])
        if node.restates_seed:
            assert not node.happened
    missed = [o.id for o in result.missed]
    assert len(missed) == len(set(missed))
    assert set(missed) == set(events) - set(matched)  # every unmatched outcome is missed
    assert len(missed) + len(matched) == len(case.outcomes) == result.n_outcomes
    y, p, d = result.forecasts()
    assert len(y) == len(p) == len(d) == len(result.scored) + len(missed)
    assert ((p >= 0) & (p <= 1)).all() and set(y.tolist()) <= {0.0, 1.0}
    # resolving in a group (GRPO's completions of one prompt) changes nothing
    assert resolve_many([tree, None, tree], case, MATCHER) == [result, None, result]
    return result


@PROFILE
@given(resolution_inputs)
def test_resolution_invariants(inputs):
    check_resolution(*inputs)


def test_resolution_strategies_reach_deep_matches():
    """The generated trees and cases do produce matched children, not only misses."""
    tree = {"seed": "S", "children": [{"event": "a", "probability": 0.9, "children": [
        {"event": "B", "probability": 0.5}]}, {"event": "A.", "probability": 0.2}]}
    case = Case(id="r", seed="S", outcomes=[Outcome(id="o0", event="A"),
                                             Outcome(id="o1", event="b  ", parent="o0")])
    result = check_resolution(tree, case)
    assert [n.outcome for n in result.nodes] == ["o0", "o1", None] and not result.missed



def test_the_fuzz_script_runs_every_target(tmp_path, monkeypatch):
    import importlib.util
    import sys

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz.py"
    spec = importlib.util.spec_from_file_location("fuzz_script", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fuzz_script", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    assert module.main(["--examples", "5", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "fuzz.json").read_text())
    assert [row["target"] for row in report["targets"]] == [
        "parse_tree", "repair_truncated", "load_cases", *DEFAULT_WEIGHTS, "composite",
        "resolution"]
    assert all(row["inputs"] > 0 for row in report["targets"])
    assert "| parse_tree |" in (tmp_path / "fuzz.md").read_text()
