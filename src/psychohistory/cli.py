"""The ``psychohistory`` command: a thin layer over the library (no logic lives only here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from psychohistory import __version__


@click.group()
@click.version_option(__version__, prog_name="psychohistory")
def cli() -> None:
    """Train and evaluate language models that forecast probability trees."""


# ----------------------------------------------------------------------------- plugins


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List loaded plugins and what each registers."""
    from psychohistory.plugins import plugin_summary

    rows = plugin_summary()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="psychohistory plugins")
    for column in ("plugin", "distribution", "matchers", "rewards", "backends", "hooks"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["distribution"] or "(built-in)",
                      ", ".join(row["matchers"]), ", ".join(row["rewards"]),
                      ", ".join(row["backends"]), ", ".join(row["hooks"]))
    Console().print(table)


# ---------------------------------------------------------------------------- validate


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(["auto", "cases", "trees"]), default="auto",
              show_default=True, help="What the file holds; auto decides from the first record.")
def validate(path: Path, kind: str) -> None:
    """Check a cases or trees JSONL file and report every bad record with its line."""
    from psychohistory.validation import validate_file

    report = validate_file(path, kind=kind)
    for problem in report.problems:
        click.echo(problem, err=True)
    click.echo(f"{path}: {report.kind}: {report.n_good} good, {len(report.problems)} bad")
    if report.problems:
        sys.exit(1)


# ---------------------------------------------------------------------------- datasets


@cli.group()
def datasets() -> None:
    """List and export the bundled datasets."""


@datasets.command("list")
def datasets_list() -> None:
    """List the bundled datasets."""
    from psychohistory.datasets import list_datasets, load_dataset

    for name, description in list_datasets().items():
        click.echo(f"{name} ({len(load_dataset(name))} cases): {description}")


@datasets.command("export")
@click.argument("name")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["train", "test"]), default=None)
def datasets_export(name: str, out: Path, split: str | None) -> None:
    """Write bundled dataset NAME to OUT as JSONL."""
    from psychohistory.cases import save_cases
    from psychohistory.datasets import load_dataset

    cases = load_dataset(name, split=split)
    save_cases(cases, out)
    click.echo(f"wrote {len(cases)} cases to {out}")


# ---------------------------------------------------------------------------- evaluate


@cli.command()
@click.argument("trees", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("cases", default="historical")
@click.option("--matcher", default="cascade", show_default=True, help="A registered matcher.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write report.json, report.md and plots here.")
def evaluate(trees: Path, cases: str, matcher: str, out: Path | None) -> None:
    """Evaluate TREES (JSONL of {case_id, completion} or trees) against CASES.

    CASES is a cases JSONL file or a bundled dataset name.
    """
    from psychohistory.datasets import load_dataset
    from psychohistory.evaluation import TreeEvaluator, load_trees

    case_list = load_dataset(cases)
    tree_list, matched_cases, skipped = load_trees(trees, case_list)
    for message in skipped:
        click.echo(f"skipped: {message}", err=True)
    report = TreeEvaluator(matcher=matcher).evaluate_many(
        tree_list, matched_cases, skipped=skipped, label=trees.stem)
    report.print_table()
    if out is not None:
        for path in report.write(out):
            click.echo(f"wrote {path}")


# ---------------------------------------------------------------------------- bench


@cli.group()
def bench() -> None:
    """Benchmarks: matcher accuracy and throughput, reward latency."""


@bench.command("matchers")
@click.option("--matcher", "matchers", multiple=True, help="Matcher name (repeatable); "
              "default: every registered matcher but llm.")
@click.option("--pairs", "pair_files", multiple=True, type=click.Path(exists=True),
              help="Labelled pairs (JSONL or CSV, repeatable); default: bundled event pairs.")
@click.option("--split", type=click.Choice(["dev", "test"]), default=None,
              help="Half of the bundled event pairs (defaults were tuned on dev).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the results as JSON here.")
def bench_matchers(matchers: tuple[str, ...], pair_files: tuple[str, ...], split: str | None,
                   json_out: Path | None) -> None:
    """Precision, recall, F1, ROC AUC and pairs/s of matchers on labelled pairs."""
    from psychohistory.bench.matchers import (
        EVENT_PAIRS,
        results_json,
        results_table,
        run_matcher_benchmark,
    )

    results = run_matcher_benchmark(matchers or None, pair_files or (EVENT_PAIRS,), split=split)
    click.echo(results_table(results))
    if json_out is not None:
        json_out.write_text(results_json(results) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_out}")


@bench.command("rewards")
@click.option("--group", default=64, show_default=True, help="Completions per group.")
@click.option("--repeats", default=5, show_default=True)
def bench_rewards(group: int, repeats: int) -> None:
    """Latency of the default rewards on a GRPO-sized group of completions."""
    from psychohistory.bench.rewards import run_reward_benchmark

    click.echo(json.dumps(run_reward_benchmark(group=group, repeats=repeats), indent=2))


@cli.command()
@click.option("--cases", "n_cases", default=6, show_default=True,
              help="How many held-out historical cases to forecast.")
@click.option("--out", "out_dir", default="runs/demo", show_default=True)
@click.option("--model", default="smollm2-135m-instruct", show_default=True)
def demo(n_cases: int, out_dir: str, model: str) -> None:
    """The main job: a real model forecasts real events, scored and reported."""
    from psychohistory.demo import DemoConfig, run_demo

    run_demo(DemoConfig(n_cases=n_cases, out_dir=out_dir, model=model))


def main(argv: list[str] | None = None) -> Any:
    """Entry point: load plugins' subcommands, then run."""
    from psychohistory.plugins import get_plugin_manager

    get_plugin_manager().hook.register_commands(cli=cli)
    return cli.main(args=argv, prog_name="psychohistory")


if __name__ == "__main__":
    main()
