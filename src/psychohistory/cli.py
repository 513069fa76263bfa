"""The ``psychohistory`` command: a thin layer over the library (no logic lives only here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from psychohistory import __version__

_DEBUG = {"on": False}


@click.group()
@click.version_option(__version__, prog_name="psychohistory")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
def cli(debug: bool) -> None:
    """Train and evaluate language models that forecast probability trees."""
    _DEBUG["on"] = debug


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
    from psychohistory.errors import CaseFormatError
    from psychohistory.validation import validate_file

    try:
        report = validate_file(path, kind=kind)
    except CaseFormatError as exc:  # the file as a whole: empty, or of no kind we can tell
        raise click.ClickException(str(exc)) from exc
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
@click.option("--split", type=click.Choice(["train", "dev", "test"]), default=None)
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
@click.argument("cases")
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
    tree_list, matched_cases, skipped, errors = load_trees(trees, case_list)
    for message in skipped:
        click.echo(f"skipped: {message}", err=True)
    report = TreeEvaluator(matcher=matcher).evaluate_many(
        tree_list, matched_cases, skipped=skipped, parse_errors=errors, label=trees.stem)
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
              help="Labelled pairs (JSONL or CSV, repeatable); default: the headline sets the "
                   "shipped verifier never saw (blind pairs, the resolution audit, the test "
                   "split's within-case pairs).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the results as JSON here.")
def bench_matchers(matchers: tuple[str, ...], pair_files: tuple[str, ...],
                   json_out: Path | None) -> None:
    """Precision, recall, F1, ROC AUC and pairs/s of matchers on labelled pairs."""
    from psychohistory.bench.matchers import (
        HEADLINE_SETS,
        results_json,
        results_table,
        run_matcher_benchmark,
    )

    results = run_matcher_benchmark(matchers or None, pair_files or HEADLINE_SETS)
    click.echo(results_table(results))
    if json_out is not None:
        json_out.write_text(results_json(results) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_out}")


@bench.command("exploits")
@click.option("--cases", "cases_name", default="historical", show_default=True,
              help="Cases JSONL or bundled dataset; its test split when bundled.")
@click.option("--limit", type=int, default=None, help="Only the first N cases.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write exploits.md and exploits.json here.")
def bench_exploits(cases_name: str, limit: int | None, out: Path | None) -> None:
    """An honest tree against every exploit, for every reward and headline metric."""
    from dataclasses import asdict

    from psychohistory.bench.exploits import exploit_table, run_exploit_suite
    from psychohistory.datasets import DATASETS, load_dataset

    cases = load_dataset(cases_name, split="test" if cases_name in DATASETS else None)
    rows = run_exploit_suite(cases[:limit] if limit else cases)
    table = exploit_table(rows)
    click.echo(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "exploits.md").write_text(table + "\n", encoding="utf-8")
        (out / "exploits.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
        click.echo(f"wrote {out / 'exploits.md'}")


@bench.command("rewards")
@click.option("--group", default=64, show_default=True, help="Completions per group.")
@click.option("--repeats", default=5, show_default=True)
def bench_rewards(group: int, repeats: int) -> None:
    """Latency of the default rewards on a GRPO-sized group of completions."""
    from psychohistory.bench.rewards import run_reward_benchmark

    click.echo(json.dumps(run_reward_benchmark(group=group, repeats=repeats), indent=2))


# ---------------------------------------------------------------------- train, generate


TRAIN_SECTIONS = ("sft", "grpo")  # the tables one config file may hold, one per command


def _load_config_file(path: Path | None, section: str = "train") -> dict[str, Any]:
    """A TOML or YAML file of settings: its ``[sft]`` or ``[grpo]`` table (``section``), else
    a ``[train]`` table, else its top-level keys. One file can so hold a whole SFT-then-GRPO
    run (``configs/results_table.toml``)."""
    if path is None:
        return {}
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    elif path.suffix == ".toml":
        import tomllib

        data = tomllib.loads(text)
    else:
        raise click.BadParameter(f"{path}: use a .toml, .yaml or .yml file", param_hint="--config")
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: expected a table of settings", param_hint="--config")
    table = data.get(section)
    if table is not None:
        if not isinstance(table, dict):
            raise click.BadParameter(f"{path}: [{section}] must be a table of settings",
                                     param_hint="--config")
        shared = {k: v for k, v in data.items() if not isinstance(v, dict)}  # model, seed ...
        return {**shared, **table}
    table = data.get("train", data)
    return {k: v for k, v in table.items() if k not in TRAIN_SECTIONS}


def _parse_set(values: tuple[str, ...]) -> dict[str, Any]:
    """``--set key=value`` pairs, values read as JSON when they parse (numbers, lists...)."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--set")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


@cli.group()
def train() -> None:
    """Train a forecaster: `sft` (supervised warm start) or `grpo` (RL with the rewards)."""


_train_options = [
    click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False,
                 path_type=Path), help="TOML or YAML settings file."),
    click.option("--model", default=None, help="Path, hub name, .gguf or smollm2-135m-instruct."),
    click.option("--cases", "cases_name", default=None,
                 help="Cases JSONL or bundled dataset (default: historical, train split)."),
    click.option("--backend", default=None, help="local (default), accelerate or modal."),
    click.option("--output-dir", default=None),
    click.option("--max-steps", type=int, default=None),
    click.option("--resume", is_flag=True, help="Continue from the last checkpoint."),
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                 help="Any other setting, TRL's included (repeatable)."),
]


def _with_train_options(func: Any) -> Any:
    for option in reversed(_train_options):
        func = option(func)
    return func


def _settings(config_file: Path | None, overrides: tuple[str, ...], *, section: str,
              **flags: Any) -> dict[str, Any]:
    settings = _load_config_file(config_file, section)
    settings.update(_parse_set(overrides))
    settings.update({k: v for k, v in flags.items() if v is not None})
    return settings


def _take(settings: dict[str, Any], key: str, flag: Any = None, default: Any = None) -> Any:
    """Remove ``key`` from the settings (it is the command's, not TRL's) and return the
    command-line ``flag`` if given, else the file's value, else ``default``."""
    from_file = settings.pop(key, None)
    if flag is not None:
        return flag
    return from_file if from_file is not None else default


def _cases(name: str | None) -> list[Any]:
    from psychohistory.datasets import load_dataset

    return load_dataset(name) if name else load_dataset("historical", split="train")


@train.command("grpo")
@_with_train_options
@click.option("--reward", "rewards", multiple=True, help="Registered reward (repeatable).")
@click.option("--sft-adapter", default=None, help="Merge this SFT adapter first.")
def train_grpo(config_file: Path | None, model: str | None, cases_name: str | None,
               backend: str | None, output_dir: str | None, max_steps: int | None, resume: bool,
               overrides: tuple[str, ...], rewards: tuple[str, ...],
               sft_adapter: str | None) -> None:
    """GRPO with the library's rewards (LoRA r4 by default)."""
    from psychohistory.training.trainer import Trainer

    settings = _settings(config_file, overrides, section="grpo", output_dir=output_dir,
                         max_steps=max_steps)
    model = _take(settings, "model", model, "smollm2-135m-instruct")
    rewards_list = _take(settings, "rewards", list(rewards) or None)
    weights = _take(settings, "weights")
    matcher = _take(settings, "matcher")
    backend = _take(settings, "backend", backend, "local")
    cases = _cases(_take(settings, "cases", cases_name))
    sft_adapter = _take(settings, "sft_adapter", sft_adapter)
    eval_spec = _take(settings, "eval_cases")
    kwargs: dict[str, Any] = {"config": settings, "backend": backend, "matcher": matcher,
                              "weights": weights, "sft_adapter": sft_adapter,
                              "eval_cases": _cases(eval_spec) if eval_spec else ()}
    if rewards_list:
        kwargs["rewards"] = rewards_list
    result = Trainer(model, **kwargs).fit(cases, resume=resume)
    click.echo(f"trained {result.global_step} steps; adapter: {result.adapter_path}")


@train.command("sft")
@_with_train_options
def train_sft(config_file: Path | None, model: str | None, cases_name: str | None,
              backend: str | None, output_dir: str | None, max_steps: int | None, resume: bool,
              overrides: tuple[str, ...]) -> None:
    """Supervised warm start on ground-truth trees (LoRA r64, alpha 128)."""
    from psychohistory.training.config import SFTSettings
    from psychohistory.training.sft import sft

    settings = _settings(config_file, overrides, section="sft", output_dir=output_dir,
                         max_steps=max_steps)
    model = _take(settings, "model", model, "smollm2-135m-instruct")
    backend = _take(settings, "backend", backend, "local")
    cases = _cases(_take(settings, "cases", cases_name))
    result = sft(model, cases, settings=SFTSettings.from_dict(settings), backend=backend,
                 resume=resume)
    click.echo(f"trained {result.global_step} steps; adapter: {result.adapter_path}")


@cli.command()
@click.argument("seed", required=False)
@click.option("--context", default="", help="Facts known at the seed's date.")
@click.option("--cases", "cases_name", default=None,
              help="Generate for every case of a JSONL file or bundled dataset instead.")
@click.option("--model", default="smollm2-135m-instruct", show_default=True)
@click.option("--adapter", default=None, help="A LoRA adapter folder (SFT or GRPO).")
@click.option("--sft-adapter", default=None,
              help="An SFT adapter merged into the base first (for a GRPO adapter trained "
                   "on top of it).")
@click.option("--sample", is_flag=True, help="Sample (temperature 0.7) instead of greedy.")
@click.option("--batch-size", default=8, show_default=True, help="Trees generated at once.")
@click.option("--seed-rng", "rng_seed", type=int, default=0, show_default=True,
              help="Random seed for --sample and for retries of unparsable outputs.")
@click.option("--max-new-tokens", default=320, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the completions as JSONL ({case_id, completion} with --cases, which "
                   "evaluate reads; {seed, completion} for a SEED).")
def generate(seed: str | None, context: str, cases_name: str | None, model: str,
             adapter: str | None, sft_adapter: str | None, sample: bool, batch_size: int,
             rng_seed: int,
             max_new_tokens: int, out: Path | None) -> None:
    """Generate a probability tree for SEED (or for every case of --cases)."""
    from psychohistory.inference import ProbabilityTreeInference

    if not seed and not cases_name:
        raise click.UsageError("give a SEED or --cases")
    inference = ProbabilityTreeInference(model, max_new_tokens=max_new_tokens,
                                         sft_adapter=sft_adapter)
    inference.load_adapter(adapter, "adapter" if adapter else None)
    import transformers

    transformers.set_seed(rng_seed)
    if seed:
        result = inference.generate_trees([seed], [context])[0]
        click.echo(result.tree.to_json(indent=2) if result.tree else result.text)
        if result.tree is None:
            click.echo(f"unparsable: {result.error}", err=True)
        if out is not None:
            out.write_text(json.dumps({"seed": seed, "completion": result.text}) + "\n")
            click.echo(f"wrote {out}")
        return
    from psychohistory.datasets import load_dataset
    from psychohistory.demo import generate_for_cases, write_generations

    cases = load_dataset(str(cases_name))
    generations = generate_for_cases(inference, cases, label="generate", batch_size=batch_size,
                                     sample=sample)
    target = out or Path("trees.jsonl")
    write_generations(target, cases, generations)
    parsed = sum(g.tree is not None for g in generations)
    click.echo(f"wrote {len(cases)} completions ({parsed} parsed) to {target}")


@cli.command()
@click.argument("cases")
@click.option("--model", default="smollm2-135m-instruct", show_default=True)
@click.option("--adapter", default=None, help="A LoRA adapter folder (SFT or GRPO).")
@click.option("--sft-adapter", default=None, help="An SFT adapter merged into the base first.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures as JSON here.")
def perplexity(cases: str, model: str, adapter: str | None, sft_adapter: str | None,
               out: Path | None) -> None:
    """Perplexity of a model on the real trees of CASES (a file or e.g. historical:test)."""
    from psychohistory.datasets import load_dataset
    from psychohistory.inference import ProbabilityTreeInference

    case_list = load_dataset(cases)
    inference = ProbabilityTreeInference(model, adapter=adapter, sft_adapter=sft_adapter)
    from psychohistory.training.loss import ground_truth_loss

    with inference.active_adapter():
        loss = ground_truth_loss(inference.model, inference.tokenizer, case_list)
    figures = {"cases_source": cases, "model": model, "adapter": adapter,
               "sft_adapter": sft_adapter, "perplexity": loss.perplexity, "loss": loss.loss,
               "tokens": loss.tokens, "cases": len(case_list)}
    click.echo(json.dumps(figures))
    if out is not None:
        out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


@cli.command()
@click.argument("model")
@click.option("--method", type=click.Choice(["grpo", "sft"]), default="grpo", show_default=True)
@click.option("--lora-rank", type=click.IntRange(min=1), default=None,
              help="Default: the method's (GRPO 4, SFT 64).")
@click.option("--quantize", type=click.Choice(["4bit", "bf16", "fp32"]), default=None)
@click.option("--gpu", default="A10G", show_default=True,
              help="A known card, or any name with --gpu-gib.")
@click.option("--gpu-gib", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Usable GiB of the card (one not in the table, or a measured free size).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Sequences per step (GRPO: completions per step, the group). Default: the "
                   "Trainer's / sft's.")
@click.option("--completion-length", type=click.IntRange(min=1), default=None,
              help="GRPO: max_completion_length (default: the Trainer's, 256).")
@click.option("--prompt-tokens", type=click.IntRange(min=1), default=None,
              help="GRPO: prompt tokens before the completion (default: the Trainer's, 450).")
@click.option("--seq-len", type=click.IntRange(min=1), default=None,
              help="Tokens a sequence, overriding prompt + completion (SFT: max_length, "
                   "default 1024).")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None,
              help="Default: as the Trainer (GRPO: on only if needed to fit; SFT: on).")
@click.option("--headroom", type=click.FloatRange(min=0, max=1, min_open=True), default=0.9,
              show_default=True, help="Share of the card a plan may use.")
@click.option("--json", "as_json", is_flag=True)
def plan(model: str, method: str, lora_rank: int | None, quantize: str | None, gpu: str,
         gpu_gib: float | None, batch_size: int | None, completion_length: int | None,
         prompt_tokens: int | None, seq_len: int | None, gradient_checkpointing: bool | None,
         headroom: float, as_json: bool) -> None:
    """Estimate peak GPU memory for training MODEL and say whether it fits GPU.

    The defaults are the Trainer's (GRPO) or sft's settings, so the answer is the check a run
    makes before it starts. MODEL is a known shape, a model folder or a config.json.
    """
    import dataclasses

    from psychohistory.backends.base import PROMPT_TOKENS
    from psychohistory.backends.memory import plan_memory
    from psychohistory.errors import ConfigError
    from psychohistory.training.config import SFTSettings, TrainerConfig

    prompt: int | None = None
    if method == "grpo":
        grpo = TrainerConfig()
        if seq_len is None:
            prompt = prompt_tokens or PROMPT_TOKENS
            length = prompt + (completion_length or grpo.max_completion_length)
        else:  # the sequence as given; the prompt only if named, to report completions
            length, prompt = seq_len, prompt_tokens
        batch = batch_size or grpo.per_device_train_batch_size
        rank = lora_rank or grpo.lora_r
        default_checkpointing = grpo.gradient_checkpointing
    else:
        sft = SFTSettings()
        length, batch = seq_len or sft.max_length, batch_size or sft.per_device_train_batch_size
        rank, default_checkpointing = lora_rank or sft.lora_r, sft.gradient_checkpointing
    checkpointing = default_checkpointing if gradient_checkpointing is None else \
        gradient_checkpointing
    try:
        result = plan_memory(model, method=method, lora_rank=rank, quantize=quantize, gpu=gpu,
                             gpu_gib=gpu_gib, seq_len=length, batch_size=batch,
                             gradient_checkpointing=checkpointing, headroom=headroom,
                             prompt_tokens=prompt)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(json.dumps(dataclasses.asdict(result), indent=2) if as_json else result.summary())
    if not result.fits:
        sys.exit(2)


@cli.command()
@click.option("--cases", "n_cases", default=6, show_default=True,
              help="How many held-out historical cases to forecast.")
@click.option("--out", "out_dir", default="runs/demo", show_default=True)
@click.option("--model", default="smollm2-135m-instruct", show_default=True)
@click.option("--sft-steps", default=8, show_default=True)
@click.option("--grpo-steps", default=2, show_default=True)
def demo(n_cases: int, out_dir: str, model: str, sft_steps: int, grpo_steps: int) -> None:
    """The main job: baseline forecasts, a short SFT + GRPO run, forecasts again, side by side."""
    from psychohistory.demo import DemoConfig, run_demo

    run_demo(DemoConfig(n_cases=n_cases, out_dir=out_dir, model=model, sft_steps=sft_steps,
                        grpo_steps=grpo_steps))


def main(argv: list[str] | None = None) -> Any:
    """Entry point: load plugins' subcommands, then run; a user error is one line, exit 1."""
    from psychohistory.errors import PsychohistoryError
    from psychohistory.plugins import get_plugin_manager

    try:
        impls = get_plugin_manager().hook.register_commands.get_hookimpls()
    except PsychohistoryError as exc:  # a broken plugin must not break --help or plugins
        click.echo(f"warning: {exc}", err=True)
        impls = []
    for impl in impls:  # one at a time, so a plugin that raises is named and skipped
        try:
            impl.function(cli=cli)
        except Exception as exc:  # third-party code: whatever it raises, the CLI still runs
            click.echo(f"warning: plugin {impl.plugin_name!r} failed in register_commands "
                       f"({type(exc).__name__}: {exc}); its commands are left out. Skip it "
                       "with PSYCHOHISTORY_LOAD_PLUGINS (see `psychohistory plugins`)", err=True)
    try:
        return cli.main(args=argv, prog_name="psychohistory", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except (PsychohistoryError, ValueError, KeyError, OSError) as exc:
        if _DEBUG["on"]:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        click.echo(f"error: {message} (run with --debug for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
