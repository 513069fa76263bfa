"""TreeEvaluator: score forecast trees against what happened, and report it.

Per tree: Brier and log score over resolved forecasts (missed outcomes included as p = 0),
coverage of the actual outcomes (overall and by matching method), precision of the scored
nodes, and a per-depth breakdown. Over many trees: the same pooled, plus ECE, the Murphy
decomposition, a rich table, JSON, Markdown and PNG plots.
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

METHODS = ("exact", "fuzzy", "embedding", "llm")


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
    n_nodes: int
    n_scored: int
    n_matched: int
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
        return data


def _forecast_metrics(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    if not y.size:
        return float("nan"), float("nan")
    return metrics.brier_score_loss(y, p), -metrics.log_loss(y, p, eps=1e-3)


def _per_depth(y: np.ndarray, p: np.ndarray, d: np.ndarray) -> dict[int, dict[str, float]]:
    out = {}
    for depth in sorted(set(d.tolist())):
        mask = d == depth
        brier, _ = _forecast_metrics(y[mask], p[mask])
        out[int(depth)] = {"n": int(mask.sum()), "brier": brier,
                           "happened": float(y[mask].mean()), "mean_p": float(p[mask].mean())}
    return out


def metrics_from_resolution(res: Resolution) -> TreeMetrics:
    y, p, d = res.forecasts()
    brier, log_score = _forecast_metrics(y, p)
    scored = res.scored
    matched = [n for n in scored if n.happened]
    by_method = Counter(n.method for n in matched)
    n_out = res.n_outcomes
    return TreeMetrics(
        case_id=res.case_id, brier=brier, log_score=log_score, n_nodes=len(res.nodes),
        n_scored=len(scored), n_matched=len(matched), n_outcomes=n_out,
        n_missed=len(res.missed),
        coverage=len(matched) / n_out if n_out else float("nan"),
        precision=len(matched) / len(scored) if scored else float("nan"),
        coverage_by_method={m: by_method.get(m, 0) / n_out if n_out else 0.0 for m in METHODS}
        | {"none": len(res.missed) / n_out if n_out else 0.0},
        per_depth=_per_depth(y, p, d), resolution=res,
    )


class TreeEvaluator:
    """Evaluates trees against cases with one matcher (default: the full cascade).

    >>> from psychohistory.cases import Case, Outcome
    >>> from psychohistory.tree import parse_tree
    >>> case = Case(id="c", seed="S", outcomes=[Outcome(id="a", event="Prices rise")])
    >>> tree = parse_tree('{"seed": "S", "children": [{"event": "Prices rise", "probability": 0.8},'
    ...                   ' {"event": "Wages fall", "probability": 0.4}]}')
    >>> m = TreeEvaluator(matcher="exact").evaluate(tree, case)
    >>> m.brier, m.coverage, m.precision
    (0.1, 1.0, 0.5)
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
        label: str = "model",
    ) -> EvaluationReport:
        """Metrics of many trees, pooled. ``None`` trees count as unparsable (all missed)."""
        if len(trees) != len(cases):
            raise ValueError(f"{len(trees)} trees for {len(cases)} cases")
        by_case: dict[str, list[int]] = {}
        for i, case in enumerate(cases):
            by_case.setdefault(case.id, []).append(i)
        per_tree: list[TreeMetrics | None] = [None] * len(trees)
        for indices in by_case.values():
            case = cases[indices[0]]
            for i, res in zip(indices, resolve_many([trees[i] for i in indices], case,
                                                    self.matcher), strict=True):
                per_tree[i] = metrics_from_resolution(res) if res is not None else None
        return EvaluationReport.build(per_tree, list(cases), skipped=list(skipped), label=label)


@dataclass
class EvaluationReport:
    """Pooled metrics over many trees, with per-tree detail and output helpers.

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
    ece_equal_mass: float
    decomposition: dict[str, float]
    coverage: float
    precision: float
    coverage_by_method: dict[str, float]
    per_depth: dict[int, dict[str, float]]
    reliability: dict[str, list[float]]
    trees: list[TreeMetrics | None] = field(repr=False, default_factory=list)
    skipped: list[str] = field(repr=False, default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(cls, per_tree: list[TreeMetrics | None], cases: list[Case], *,
              skipped: list[str], label: str) -> EvaluationReport:
        ys, ps, ds = [], [], []
        matched = scored = outcomes = 0
        methods: Counter[str] = Counter()
        for tm, case in zip(per_tree, cases, strict=True):
            if tm is None or tm.resolution is None:  # unparsable: every outcome missed
                n = len(case.outcomes)
                ys.append(np.ones(n))
                ps.append(np.zeros(n))
                ds.append(np.array([case.depth_of(o.id) for o in case.outcomes], dtype=int))
                outcomes += n
                methods["none"] += n
                continue
            y, p, d = tm.resolution.forecasts()
            ys.append(y)
            ps.append(p)
            ds.append(d)
            matched += tm.n_matched
            scored += tm.n_scored
            outcomes += tm.n_outcomes
            methods.update({m: round(v * tm.n_outcomes) for m, v in tm.coverage_by_method.items()})
        y = np.concatenate(ys) if ys else np.zeros(0)
        p = np.concatenate(ps) if ps else np.zeros(0)
        d = np.concatenate(ds) if ds else np.zeros(0, dtype=int)
        nan = float("nan")
        if y.size:
            brier, log_score = _forecast_metrics(y, p)
            dec = metrics.brier_decomposition(y, p)
            freq, mean, count = metrics.reliability_curve(y, p, n_bins=10)
            ece = metrics.expected_calibration_error(y, p, n_bins=10)
            ece_mass = metrics.expected_calibration_error(y, p, n_bins=10, strategy="quantile")
            decomposition = {"reliability": dec.reliability, "resolution": dec.resolution,
                             "uncertainty": dec.uncertainty}
            reliability = {"frequency": freq.tolist(), "mean_forecast": mean.tolist(),
                           "count": count.tolist()}
        else:
            brier = log_score = ece = ece_mass = nan
            decomposition, reliability = {}, {}
        return cls(
            label=label, n_trees=len(per_tree),
            n_unparsable=sum(1 for t in per_tree if t is None),
            n_skipped_records=len(skipped), brier=brier, log_score=log_score, ece=ece,
            ece_equal_mass=ece_mass, decomposition=decomposition,
            coverage=matched / outcomes if outcomes else nan,
            precision=matched / scored if scored else nan,
            coverage_by_method={m: methods.get(m, 0) / outcomes if outcomes else 0.0
                                for m in (*METHODS, "none")},
            per_depth=_per_depth(y, p, d) if y.size else {}, reliability=reliability,
            trees=per_tree, skipped=skipped,
        )

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a flat dict."""
        out = {"trees": self.n_trees, "unparsable": self.n_unparsable,
               "skipped records": self.n_skipped_records, "brier": self.brier,
               "log score": self.log_score, "ECE": self.ece, "ECE (equal mass)": self.ece_equal_mass,
               "coverage": self.coverage, "precision": self.precision}
        out.update({f"coverage ({m})": v for m, v in self.coverage_by_method.items()})
        out.update(self.extra)
        return out

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in ("trees",)}
        data["trees"] = [t.to_dict() if t else None for t in self.trees]
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
        ax.set(xlabel="depth", ylabel="Brier score (lower is better)", title="Brier by depth")
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
        list[ProbabilityTree | None], list[Case], list[str]]:
    """Read a JSONL of ``{"case_id", "completion"}`` or of trees (with ``case_id``).

    Returns the trees (``None`` for a completion that does not parse: the model's failure,
    scored as all outcomes missed), their cases, and one message per skipped record (bad
    JSON, unknown case id): those are reported, never silently dropped.
    """
    from psychohistory.cases import iter_jsonl
    from psychohistory.errors import CaseFormatError, TreeParseError
    from psychohistory.validation import tree_from_record

    by_id = {c.id: c for c in cases}
    trees: list[ProbabilityTree | None] = []
    matched_cases: list[Case] = []
    skipped: list[str] = []
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
        try:
            tree = tree_from_record(record, seed=case.seed)
        except TreeParseError:
            tree = None
        trees.append(tree)
        matched_cases.append(case)
    return trees, matched_cases, skipped
