"""Resolution: which predicted nodes came true, which were not scored, which outcomes were missed.

The one place rewards and the evaluator turn a tree and a case into forecasts:

1. Nodes are matched one-to-one to actual outcomes, level by level: the children of the seed
   first, then the children of the nodes that matched, each against the outcomes still unused.
2. A node whose parent did not come true is *unscored*: its probability is conditional on
   an event that did not happen.
3. An outcome no scored node matched is *missed*: a forecast of probability 0 that happened.
4. The seed is not a forecast: a node that is the same event as the case's seed or context
   (as the matcher judges it against those texts) *restates the seed*. It never resolves
   true, so it is scored as a forecast that did not happen and its children go unscored.

Matching runs once per group of trees: every distinct event string of the group is scored
against the case's outcomes in one call, so GRPO's completions of one prompt share the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from psychohistory.cases import Case, Outcome
from psychohistory.matching.base import Matcher, Stage, stage_matches
from psychohistory.tree import NodeView, ProbabilityTree

__all__ = ["Resolution", "ResolvedNode", "Stage", "resolve", "resolve_many", "stage_matches"]


def matcher_stages(matcher: Matcher, predicted: Sequence[str], actual: Sequence[str]) -> list[Stage]:
    """The matcher's stages (plugin matchers without ``stage_scores`` count as one stage)."""
    stages = getattr(matcher, "stage_scores", None)
    if stages is not None:
        return list(stages(predicted, actual))
    return [Stage(matcher.name, matcher.score(predicted, actual), matcher.threshold)]


@dataclass(frozen=True)
class ResolvedNode:
    """A predicted node and what became of it."""

    path: str
    depth: int
    event: str
    probability: float
    scored: bool
    outcome: str | None = None  # id of the matched outcome
    method: str | None = None
    match_score: float | None = None
    restates_seed: bool = False

    @property
    def happened(self) -> bool:
        return self.outcome is not None


@dataclass
class Resolution:
    """A tree resolved against a case."""

    case_id: str
    nodes: list[ResolvedNode]
    missed: list[Outcome]
    outcome_depth: dict[str, int] = field(default_factory=dict)

    @property
    def scored(self) -> list[ResolvedNode]:
        return [n for n in self.nodes if n.scored]

    @property
    def n_outcomes(self) -> int:
        return len(self.outcome_depth)

    @property
    def restated(self) -> list[ResolvedNode]:
        """Nodes that restate the seed or context (never true)."""
        return [n for n in self.nodes if n.restates_seed]

    def forecasts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(y, p, depth)`` over scored nodes, then missed outcomes as ``(1, 0, depth)``."""
        scored = self.scored
        y = [1.0 if n.happened else 0.0 for n in scored] + [1.0] * len(self.missed)
        p = [n.probability for n in scored] + [0.0] * len(self.missed)
        d = [n.depth for n in scored] + [self.outcome_depth[o.id] for o in self.missed]
        return np.array(y), np.array(p), np.array(d, dtype=int)


def resolve(tree: ProbabilityTree, case: Case, matcher: Matcher) -> Resolution:
    """Resolve one tree against its case.

    >>> from psychohistory.cases import Case, Outcome
    >>> from psychohistory.matching.exact import ExactMatcher
    >>> from psychohistory.tree import parse_tree
    >>> case = Case(id="c", seed="S", outcomes=[Outcome(id="a", event="A"),
    ...                                          Outcome(id="b", event="B", parent="a"),
    ...                                          Outcome(id="c", event="C")])
    >>> tree = parse_tree('{"seed": "S", "children": [{"event": "A", "probability": 0.9,'
    ...                   ' "children": [{"event": "B", "probability": 0.6}]},'
    ...                   ' {"event": "X", "probability": 0.2, "children": [{"event": "C", "probability": 1}]}]}')
    >>> r = resolve(tree, case, ExactMatcher())
    >>> [(n.event, n.scored, n.outcome) for n in r.nodes]
    [('A', True, 'a'), ('B', True, 'b'), ('X', True, None), ('C', False, None)]
    >>> [o.id for o in r.missed]
    ['c']
    >>> seedy = parse_tree('{"seed": "S", "children": [{"event": "S", "probability": 1},'
    ...                    ' {"event": "A", "probability": 0.5}]}')
    >>> [(n.event, n.restates_seed, n.outcome) for n in resolve(seedy, case, ExactMatcher()).nodes]
    [('S', True, None), ('A', False, 'a')]
    """
    return resolve_many([tree], case, matcher)[0]  # type: ignore[return-value]


def resolve_many(
    trees: Sequence[ProbabilityTree | None], case: Case, matcher: Matcher
) -> list[Resolution | None]:
    """Resolve several trees of one case, scoring each distinct event string once.

    ``None`` entries (unparsable completions) stay ``None``.
    """
    views = [list(tree.iter_nodes()) if tree is not None else [] for tree in trees]
    texts = list(dict.fromkeys(v.node.event for vs in views for v in vs))
    row_of = {text: i for i, text in enumerate(texts)}
    outcome_texts = [o.event for o in case.outcomes]
    stages = matcher_stages(matcher, texts, outcome_texts) if texts and outcome_texts else []
    restating = restates_seed(matcher, texts, case)
    depth = {o.id: case.depth_of(o.id) for o in case.outcomes}
    results: list[Resolution | None] = []
    for tree, tree_views in zip(trees, views, strict=True):
        if tree is None:
            results.append(None)
            continue
        results.append(_resolve_views(tree_views, case, stages, row_of, depth, restating))
    return results


def restates_seed(matcher: Matcher, texts: Sequence[str], case: Case) -> set[str]:
    """The texts the matcher judges to be the same event as the case's seed or context."""
    anchors = [t for t in dict.fromkeys((case.seed, case.context)) if t.strip()]
    if not texts or not anchors:
        return set()
    score = getattr(matcher, "score_anchors", None) or matcher.score  # the cascade prunes here
    scores = np.asarray(score(list(texts), anchors))
    hits = np.nonzero((scores >= matcher.threshold).any(axis=1))[0]
    return {texts[int(i)] for i in hits}


def _resolve_views(views: list[NodeView], case: Case, stages: list[Stage],
                   row_of: dict[str, int], depth: dict[str, int],
                   restating: set[str]) -> Resolution:
    children: dict[tuple[int, ...], list[NodeView]] = {}
    for view in views:
        children.setdefault(view.path[:-1], []).append(view)
    resolved: dict[tuple[int, ...], ResolvedNode] = {}
    unused = list(range(len(case.outcomes)))
    level = children.get((), [])
    while level:
        candidates = [i for i, v in enumerate(level) if v.node.event not in restating]
        found = stage_matches(stages, [row_of[level[i].node.event] for i in candidates],
                              unused) if stages and candidates else []
        by_row = {candidates[m.predicted]: m for m in found}
        next_level: list[NodeView] = []
        for i, view in enumerate(level):
            m = by_row.get(i)
            resolved[view.path] = ResolvedNode(
                view.path_str, view.depth, view.node.event, view.node.probability, True,
                case.outcomes[m.actual].id if m else None, m.method if m else None,
                m.score if m else None, view.node.event in restating)
            if m is not None:
                next_level.extend(children.get(view.path, []))
        used = {m.actual for m in found}
        unused = [j for j in unused if j not in used]
        level = next_level
    nodes = [
        resolved.get(v.path) or ResolvedNode(v.path_str, v.depth, v.node.event,
                                             v.node.probability, False)
        for v in views
    ]
    missed = [case.outcomes[j] for j in unused]
    return Resolution(case.id, nodes, missed, depth)
