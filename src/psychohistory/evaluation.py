"""TreeEvaluator: score forecast trees against what happened, and report it.

The headline numbers are per case and normalised by what happened, then averaged over cases,
so padding cannot move them: per tree, Brier and log score are the *sums* of the per-forecast
losses (scored nodes, and each missed outcome as a forecast of p = 0 that happened) divided by
the case's number of outcomes, exactly as the calibration reward computes them. A junk node at
p = 0 adds nothing; one at p > 0 costs. The ECE divides by the number of outcomes too. What
the tree put on events that did not happen is reported apart (false-positive mass), and the
plain pooled means over forecasts (which junk at p = 0 improves) are kept only as labelled
diagnostics. Coverage, precision, seed restatements, per depth, 95% bootstrap intervals over
cases, and every match for audit complete the report (table, JSON, Markdown, PNG plots).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psychohistory import metrics
from psychohistory.cases import Case
from psychohistory.matching.base import Matcher
from psychohistory.resolution import Resolution, resolve_many
from psychohistory.tree import ProbabilityTree

__all__ = ["EvaluationReport", "TreeEvaluator", "TreeMetrics"]

METHODS = ("exact", "fuzzy", "embedding", "verifier", "llm")
LOG_EPS = 1e-3  # the log rule's clip, as in the calibration reward: a miss costs log(1000)


def _losses(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # the probability given to what came about, clipped from below only: a "no" at p = 0 to
    # an event that did not happen costs exactly 0, so junk written at p = 0 moves nothing
    q = np.where(y == 1, p, 1 - p)
    return (p - y) ** 2, -np.log(np.clip(q, LOG_EPS, 1.0))


@dataclass
class TreeMetrics:
    """The scores of one tree against its case (see :class:`TreeEvaluator` for an example).

    >>> from psychohistory.cases import Case, Outcome
    >>> from psychohistory.tree import parse_tree
    >>> case = Case(id="c", seed="S", outcomes=[Outcome(id="a", event="A"), Outcome(id="b", event="B")])
    >>> m = TreeEvaluator(matcher="exact").evaluate(parse_tree(
    ...     '{"seed": "S", "children": [{"event": "A", "probability": 0.9}]}'), case)
    >>> m.n_matched, m.n_missed, m.coverage_by_method["exact"], m.coverage_by_method["none"]
    (1, 1, 0.5, 0.5)
    """

    case_id: str
    brier: float
    log_score: float
    false_positive_mass: float
    n_nodes: int
    n_scored: int
    n_matched: int
    n_restates_seed: int
    n_outcomes: int
    n_missed: int
    coverage: float
    precision: float
    coverage_by_method: dict[str, float]
    per_depth: dict[int, dict[str, float]]
    resolution: Resolution | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("resolution")
        res = self.resolution
        if res is not None:
            data["matches"] = [
                {"node": n.path, "event": n.event, "probability": n.probability,
                 "outcome": n.outcome, "method": n.method, "score": n.match_score}
                for n in res.nodes if n.happened]
            data["restates_seed"] = [{"node": n.path, "event": n.event,
                                      "probability": n.probability} for n in res.restated]
        return data


def _per_depth_sums(y: np.ndarray, p: np.ndarray, d: np.ndarray,
                    outcomes_at: Counter[int]) -> dict[int, dict[str, float]]:
    """Per depth: outcomes there, summed losses, nodes and their mean forecast."""
    brier, _ = _losses(y, p)
    out: dict[int, dict[str, float]] = {}
    for depth in sorted(set(d.tolist()) | set(outcomes_at)):
        mask = d == depth
        out[int(depth)] = {"outcomes": float(outcomes_at.get(depth, 0)),
                           "loss": float(brier[mask].sum()), "forecasts": float(mask.sum()),
                           "p_sum": float(p[mask].sum()), "y_sum": float(y[mask].sum())}
    return out


def _per_depth_view(sums: dict[int, dict[str, float]]) -> dict[int, dict[str, float]]:
    return {depth: {"n": int(row["outcomes"]),
                    "brier": row["loss"] / row["outcomes"] if row["outcomes"] else float("nan"),
                    "happened": row["y_sum"] / row["forecasts"] if row["forecasts"] else float("nan"),
                    "mean_p": row["p_sum"] / row["forecasts"] if row["forecasts"] else float("nan")}
            for depth, row in sums.items()}


def _depth_counter(res: Resolution) -> Counter[int]:
    return Counter(res.outcome_depth.values())


def metrics_from_resolution(res: Resolution) -> TreeMetrics:
    y, p, d = res.forecasts()
    n_out = res.n_outcomes
    nan = float("nan")
    brier_loss, log_loss = _losses(y, p)
    scored = res.scored
    matched = [n for n in scored if n.happened]
    by_method = Counter(n.method for n in matched)
    false_mass = sum(n.probability for n in scored if not n.happened)
    return TreeMetrics(
        case_id=res.case_id,
        brier=float(brier_loss.sum()) / n_out if n_out else nan,
        log_score=-float(log_loss.sum()) / n_out if n_out else nan,
        false_positive_mass=false_mass / n_out if n_out else nan,
        n_nodes=len(res.nodes), n_scored=len(scored), n_matched=len(matched),
        n_restates_seed=len(res.restated), n_outcomes=n_out, n_missed=len(res.missed),
        coverage=len(matched) / n_out if n_out else nan,
        precision=len(matched) / len(scored) if scored else nan,
        coverage_by_method={m: by_method.get(m, 0) / n_out if n_out else 0.0 for m in METHODS}
        | {"none": len(res.missed) / n_out if n_out else 0.0},
        per_depth=_per_depth_view(_per_depth_sums(y, p, d, _depth_counter(res))),
        resolution=res,
    )


def unparsable_metrics(case: Case) -> TreeMetrics:
    """What an unparsable tree scores: every outcome missed, nothing claimed."""
    n = len(case.outcomes)
    nan = float("nan")
    depths = Counter(case.depth_of(o.id) for o in case.outcomes)
    return TreeMetrics(
        case_id=case.id, brier=1.0 if n else nan, log_score=float(np.log(LOG_EPS)) if n else nan,
        false_positive_mass=0.0, n_nodes=0, n_scored=0, n_matched=0, n_restates_seed=0,
        n_outcomes=n, n_missed=n, coverage=0.0 if n else nan, precision=nan,
        coverage_by_method={m: 0.0 for m in METHODS} | {"none": 1.0 if n else 0.0},
        per_depth={k: {"n": v, "brier": 1.0, "happened": 1.0, "mean_p": 0.0}
                   for k, v in sorted(depths.items())},
    )


class TreeEvaluator:
    """Evaluates trees against cases with one matcher (default: the full cascade).

    >>> from psychohistory.cases import Case, Outcome
    >>> from psychohistory.tree import parse_tree
    >>> case = Case(id="c", seed="S", outcomes=[Outcome(id="a", event="Prices rise")])
    >>> tree = parse_tree('{"seed": "S", "children": [{"event": "Prices rise", "probability": 0.8},'
    ...                   ' {"event": "Wages fall", "probability": 0.4}]}')
    >>> m = TreeEvaluator(matcher="exact").evaluate(tree, case)
    >>> round(m.brier, 3), m.coverage, m.precision   # (0.2**2 + 0.4**2) / 1 outcome
    (0.2, 1.0, 0.5)
    """

    def __init__(self, matcher: Matcher | str | None = None, **matcher_options: Any) -> None:
        if matcher is None or isinstance(matcher, str):
            from psychohistory.plugins import get_matcher

            self.matcher: Matcher = get_matcher(matcher or "cascade", **matcher_options)
        else:
            self.matcher = matcher

    def evaluate(self, tree: ProbabilityTree, case: Case) -> TreeMetrics:
        """Metrics of one tree."""
        res = resolve_many([tree], case, self.matcher)[0]
        assert res is not None
        return metrics_from_resolution(res)

    def evaluate_many(
        self,
        trees: Sequence[ProbabilityTree | None],
        cases: Sequence[Case],
        *,
        skipped: Sequence[str] = (),
        parse_errors: Sequence[str | None] | None = None,
        label: str = "model",
    ) -> EvaluationReport:
        """Metrics of many trees. ``None`` trees count as unparsable (all missed);
        ``parse_errors`` (aligned with ``trees``) says why, for the report."""
        if len(trees) != len(cases):
            raise ValueError(f"{len(trees)} trees for {len(cases)} cases")
        if parse_errors is not None and len(parse_errors) != len(trees):
            raise ValueError(f"{len(parse_errors)} parse errors for {len(trees)} trees")
        by_case: dict[str, list[int]] = {}
        for i, case in enumerate(cases):
            by_case.setdefault(case.id, []).append(i)
        per_tree: list[TreeMetrics | None] = [None] * len(trees)
        for indices in by_case.values():
            case = cases[indices[0]]
            for i, res in zip(indices, resolve_many([trees[i] for i in indices], case,
                                                    self.matcher), strict=True):
                per_tree[i] = metrics_from_resolution(res) if res is not None else None
        unparsable = [{"case_id": case.id,
                       "error": (parse_errors[i] if parse_errors else None) or "did not parse"}
                      for i, (tm, case) in enumerate(zip(per_tree, cases, strict=True))
                      if tm is None]
        return EvaluationReport.build(per_tree, list(cases), skipped=list(skipped), label=label,
                                      unparsable=unparsable)


@dataclass
class EvaluationReport:
    """Metrics over many trees: per case, normalised by what happened, averaged over cases.

    >>> from psychohistory.cases import Case, Outcome
    >>> from psychohistory.tree import parse_tree
    >>> case = Case(id="c", seed="S", outcomes=[Outcome(id="a", event="A")])
    >>> report = TreeEvaluator(matcher="exact").evaluate_many(
    ...     [parse_tree('{"seed": "S", "children": [{"event": "A", "probability": 0.8}]}'), None],
    ...     [case, case])
    >>> report.n_trees, report.n_unparsable, round(report.brier, 3)
    (2, 1, 0.52)
    >>> "| brier | 0.520 |" in report.to_markdown()
    True
    """

    label: str
    n_trees: int
    n_unparsable: int
    n_skipped_records: int
    brier: float
    log_score: float
    ece: float
    false_positive_mass: float
    coverage: float
    precision: float
    restated_seed_rate: float
    coverage_by_method: dict[str, float]
    per_depth: dict[int, dict[str, float]]
    intervals: dict[str, tuple[float, float]]
    diagnostics: dict[str, float]
    decomposition: dict[str, float]
    reliability: dict[str, list[float]]
    trees: list[TreeMetrics | None] = field(repr=False, default_factory=list)
    skipped: list[str] = field(repr=False, default_factory=list)
    unparsable: list[dict[str, str]] = field(repr=False, default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(cls, per_tree: list[TreeMetrics | None], cases: list[Case], *,
              skipped: list[str], label: str,
              unparsable: list[dict[str, str]] | None = None) -> EvaluationReport:
        ys, ps, ds = [], [], []
        matched = scored = outcomes = nodes = restated = 0
        methods: Counter[str] = Counter()
        depth_sums: dict[int, dict[str, float]] = {}
        rows = [tm if tm is not None else unparsable_metrics(case)
                for tm, case in zip(per_tree, cases, strict=True)]
        for tm, case in zip(per_tree, cases, strict=True):
            if tm is None or tm.resolution is None:  # unparsable: every outcome missed
                n = len(case.outcomes)
                y, p = np.ones(n), np.zeros(n)
                d = np.array([case.depth_of(o.id) for o in case.outcomes], dtype=int)
                at: Counter[int] = Counter(d.tolist())
                methods["none"] += n
            else:
                y, p, d = tm.resolution.forecasts()
                at = _depth_counter(tm.resolution)
                matched += tm.n_matched
                scored += tm.n_scored
                nodes += tm.n_nodes
                restated += tm.n_restates_seed
                n = tm.n_outcomes
                methods.update({m: round(v * n) for m, v in tm.coverage_by_method.items()})
            outcomes += n
            ys.append(y)
            ps.append(p)
            ds.append(d)
            for depth, row in _per_depth_sums(y, p, d, at).items():
                into = depth_sums.setdefault(depth, dict.fromkeys(row, 0.0))
                for key, value in row.items():
                    into[key] += value
        y = np.concatenate(ys) if ys else np.zeros(0)
        p = np.concatenate(ps) if ps else np.zeros(0)
        nan = float("nan")
        per_case = {key: np.array([getattr(r, key) for r in rows if r.n_outcomes], dtype=float)
                    for key in ("brier", "log_score", "false_positive_mass", "coverage")}
        intervals = {key: metrics.bootstrap_interval(v) for key, v in per_case.items()
                     if v.size and np.isfinite(v).all()}
        diagnostics: dict[str, float] = {}
        decomposition: dict[str, float] = {}
        reliability: dict[str, list[float]] = {}
        ece = nan
        if y.size:
            ece = metrics.outcome_calibration_error(y, p, n_outcomes=max(outcomes, 1))
            diagnostics = {
                "brier (pooled over forecasts)": metrics.brier_score_loss(y, p),
                "log score (pooled over forecasts)": -metrics.log_loss(y, p, eps=LOG_EPS),
                "ECE (pooled over forecasts)": metrics.expected_calibration_error(y, p),
                "ECE (pooled, equal mass)": metrics.expected_calibration_error(
                    y, p, strategy="quantile")}
            dec = metrics.brier_decomposition(y, p)
            decomposition = {"reliability": dec.reliability, "resolution": dec.resolution,
                             "uncertainty": dec.uncertainty}
            freq, mean, count = metrics.reliability_curve(y, p, n_bins=10)
            reliability = {"frequency": freq.tolist(), "mean_forecast": mean.tolist(),
                           "count": count.tolist()}

        def mean_of(key: str) -> float:
            v = per_case[key]
            return float(v.mean()) if v.size else nan

        return cls(
            label=label, n_trees=len(per_tree),
            n_unparsable=sum(1 for t in per_tree if t is None),
            n_skipped_records=len(skipped), brier=mean_of("brier"),
            log_score=mean_of("log_score"), ece=ece,
            false_positive_mass=mean_of("false_positive_mass"),
            coverage=matched / outcomes if outcomes else nan,
            precision=matched / scored if scored else nan,
            restated_seed_rate=restated / nodes if nodes else nan,
            coverage_by_method={m: methods.get(m, 0) / outcomes if outcomes else 0.0
                                for m in (*METHODS, "none")},
            per_depth=_per_depth_view(depth_sums), intervals=intervals,
            diagnostics=diagnostics, decomposition=decomposition, reliability=reliability,
            trees=per_tree, skipped=skipped, unparsable=list(unparsable or []),
        )

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a flat dict (diagnostics last, labelled as such)."""
        out = {"trees": self.n_trees, "unparsable": self.n_unparsable,
               "skipped records": self.n_skipped_records, "brier": self.brier,
               "log score": self.log_score, "ECE": self.ece,
               "false-positive mass": self.false_positive_mass,
               "coverage": self.coverage, "precision": self.precision,
               "restated-seed rate": self.restated_seed_rate}
        out.update({f"coverage ({m})": v for m, v in self.coverage_by_method.items()
                    if v or m in ("verifier", "none")})
        out.update(self.extra)
        out.update({f"diagnostic: {k}": v for k, v in self.diagnostics.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in ("trees",)}
        data["trees"] = [t.to_dict() if t else None for t in self.trees]
        data["unparsable"] = self.unparsable
        return data

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, default=_jsonable)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_markdown(self, others: Sequence[EvaluationReport] = ()) -> str:
        """A Markdown table of this report (and ``others`` side by side) plus per depth."""
        reports = [self, *others]
        lines = ["| metric | " + " | ".join(r.label for r in reports) + " |",
                 "|---|" + "---|" * len(reports)]
        for key in self.summary():
            lines.append(f"| {key} | " + " | ".join(_fmt(r.summary().get(key)) for r in reports)
                         + " |")
        lines += ["", "| depth | " + " | ".join(f"{r.label} n / brier" for r in reports) + " |",
                  "|---|" + "---|" * len(reports)]
        depths = sorted({d for r in reports for d in r.per_depth})
        for depth in depths:
            cells = []
            for r in reports:
                row = r.per_depth.get(depth)
                cells.append(f"{row['n']} / {row['brier']:.3f}" if row else "")
            lines.append(f"| {depth} | " + " | ".join(cells) + " |")
        lines += ["", "95% bootstrap intervals over cases:", ""]
        for r in reports:
            cells = [f"{k} [{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in r.intervals.items()]
            lines.append(f"- {r.label}: " + ("; ".join(cells) or "none"))
        for r in reports:
            lines += ["", f"### {r.label}: every match", "",
                      "| case | node | predicted event | p | outcome | method | score |",
                      "|---|---|---|---|---|---|---|"]
            for tm in (t for t in r.trees if t is not None):
                for m in tm.to_dict().get("matches", []):
                    lines.append(f"| {tm.case_id} | {m['node']} | {_cell(m['event'])} | "
                                 f"{m['probability']:.2f} | {m['outcome']} | {m['method']} | "
                                 f"{_fmt(m['score'])} |")
            restated = [(tm.case_id, x) for tm in r.trees if tm
                        for x in tm.to_dict().get("restates_seed", [])]
            if restated:
                lines += ["", f"{r.label}: nodes that restate the seed (never true):", ""]
                lines += [f"- {cid} {x['node']} (p={x['probability']:.2f}): {_cell(x['event'])}"
                          for cid, x in restated]
            if r.unparsable:
                lines += ["", f"{r.label}: unparsable trees:", ""]
                lines += [f"- {u['case_id']}: {_cell(u['error'])}" for u in r.unparsable]
        return "\n".join(lines) + "\n"

    def print_table(self, others: Sequence[EvaluationReport] = (), console: Any = None) -> None:
        """Print the report (and ``others`` side by side) as a rich table."""
        from rich.console import Console
        from rich.table import Table

        reports = [self, *others]
        table = Table(title="psychohistory evaluation")
        table.add_column("metric")
        for r in reports:
            table.add_column(r.label, justify="right")
        for key in self.summary():
            table.add_row(key, *[_fmt(r.summary().get(key)) for r in reports])
        (console or Console()).print(table)

    def plot(self, out_dir: str | Path, others: Sequence[EvaluationReport] = ()) -> list[Path]:
        """Write ``reliability.png`` and ``per_depth.png``; returns their paths."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        reports = [self, *others]
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        for r in reports:
            if r.reliability:
                ax.plot(r.reliability["mean_forecast"], r.reliability["frequency"], "o-",
                        label=f"{r.label} (ECE {r.ece:.3f})")
        ax.set(xlabel="forecast probability", ylabel="observed frequency", xlim=(0, 1),
               ylim=(0, 1), title="Reliability diagram")
        ax.legend(loc="lower right")  # the missed outcomes sit at the top left
        fig.tight_layout()
        reliability_path = out_dir / "reliability.png"
        fig.savefig(reliability_path, dpi=100)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(6, 4))
        width = 0.8 / len(reports)
        for k, r in enumerate(reports):
            depths = sorted(r.per_depth)
            ax.bar([d + k * width for d in depths], [r.per_depth[d]["brier"] for d in depths],
                   width=width, label=r.label)
        all_depths = sorted({d for r in reports for d in r.per_depth})
        ax.set_xticks([d + 0.4 - width / 2 for d in all_depths], [str(d) for d in all_depths])
        ax.set(xlabel="depth", ylabel="Brier per outcome (lower is better)",
               title="Brier by depth")
        ax.legend()
        fig.tight_layout()
        depth_path = out_dir / "per_depth.png"
        fig.savefig(depth_path, dpi=100)
        plt.close(fig)
        return [reliability_path, depth_path]

    def write(self, out_dir: str | Path, others: Sequence[EvaluationReport] = ()) -> list[Path]:
        """Write report.json, report.md and the plots into ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.to_json(out_dir / "report.json")
        (out_dir / "report.md").write_text(self.to_markdown(others), encoding="utf-8")
        return [out_dir / "report.json", out_dir / "report.md", *self.plot(out_dir, others)]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.3f}"
    return "" if value is None else str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def load_trees(path: str | Path, cases: Sequence[Case]) -> tuple[
        list[ProbabilityTree | None], list[Case], list[str], list[str | None]]:
    """Read a JSONL of ``{"case_id", "completion"}`` or of trees (with ``case_id``).

    Returns the trees (``None`` for a completion that does not parse: the model's failure,
    scored as all outcomes missed), their cases, one message per skipped record (bad JSON,
    unknown case id: those are reported, never silently dropped), and each tree's parse error
    (``None`` where it parsed).
    """
    from psychohistory.cases import iter_jsonl
    from psychohistory.errors import CaseFormatError, TreeParseError
    from psychohistory.validation import tree_from_record

    by_id = {c.id: c for c in cases}
    trees: list[ProbabilityTree | None] = []
    matched_cases: list[Case] = []
    skipped: list[str] = []
    errors: list[str | None] = []
    for line, record in iter_jsonl(path):
        if isinstance(record, CaseFormatError):
            skipped.append(str(record))
            continue
        if not isinstance(record, dict) or "case_id" not in record:
            skipped.append(f"{path}:{line}: needs a 'case_id' field")
            continue
        case = by_id.get(str(record["case_id"]))
        if case is None:
            skipped.append(f"{path}:{line}: unknown case_id {record['case_id']!r}")
            continue
        tree: ProbabilityTree | None
        error: str | None = None
        try:
            tree = tree_from_record(record, seed=case.seed)
        except TreeParseError as exc:
            tree, error = None, f"line {line}: {exc}"
        trees.append(tree)
        matched_cases.append(case)
        errors.append(error)
    return trees, matched_cases, skipped, errors
