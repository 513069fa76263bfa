"""The documentation builds cleanly, its generated parts are current, and its examples run.

- ``mkdocs build --strict`` passes (no broken links, missing nav entries or bad references);
- ``docs/cli.md`` and the generated tables equal ``scripts/gen_cli_docs.py``'s output;
- every name in ``psychohistory.__all__`` is documented in ``docs/api.md``;
- every interactive (```` ```pycon ````) example in the pages runs and prints what it shows.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import psychohistory as ph

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SCRIPT = ROOT / "scripts" / "gen_cli_docs.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "PSYCHOHISTORY_LOAD_PLUGINS": "",
       "NO_MKDOCS_2_WARNING": "1"}
# pages whose ```pycon blocks are run here (docs/matchers.md is tested by its own author)
PYCON_PAGES = ["quickstart.md", "concepts.md", "rewards.md", "training.md", "backends.md",
               "plugins.md"]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(not (_has("mkdocs") and _has("mkdocstrings") and _has("material")),
                    reason="mkdocs, mkdocstrings and mkdocs-material are not installed "
                           "(pip install 'psychohistory[docs]')")
def test_mkdocs_build_is_strictly_clean(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert (tmp_path / "site" / "api" / "index.html").exists()
    assert (tmp_path / "site" / "cli" / "index.html").exists()


def test_generated_pages_are_up_to_date():
    # a fresh process: the click group as the package defines it, no plugin commands added
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:] + "\nrun: python scripts/gen_cli_docs.py"


def test_cli_page_lists_every_command():
    from psychohistory.cli import cli

    text = (DOCS / "cli.md").read_text(encoding="utf-8")

    def names(group, prefix):
        for name, command in group.commands.items():
            yield f"{prefix} {name}"
            if hasattr(command, "commands"):
                yield from names(command, f"{prefix} {name}")

    builtin = {"bench", "datasets", "demo", "evaluate", "generate", "plan", "plugins", "train",
               "validate"}
    for path in names(cli, "psychohistory"):
        if path.split()[1] in builtin:  # other tests may add plugin commands to the group
            assert f"`{path}`" in text, path


def api_entries(text: str) -> set[str]:
    return set(re.findall(r"^:::\s+([\w.]+)", text, flags=re.MULTILINE))


def test_every_public_name_is_in_the_api_reference():
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    entries = api_entries(text)
    missing = []
    for name in ph.__all__:
        obj = getattr(ph, name)
        module = getattr(obj, "__module__", None) if not isinstance(obj, str) else None
        covered = f"psychohistory.{name}" in entries or (module in entries and not name.startswith("_"))
        if not covered and not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text):
            missing.append(name)
    assert not missing, f"not in docs/api.md: {missing}"
    for entry in entries:  # and every entry names something that exists
        assert resolve(entry) is not None, entry


def resolve(dotted: str):
    """The module or object a ``::: dotted.path`` entry names."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    return None

def pycon_blocks(page: Path) -> list[tuple[int, str]]:
    """``(line number, source)`` of each ```pycon block of a page."""
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)), m.group(1))
            for m in re.finditer(r"^```pycon\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)]


@pytest.mark.parametrize("page", PYCON_PAGES)
def test_interactive_examples_run(page, fresh_plugins):
    """The blocks of a page run in order in one namespace, like a session."""
    path = DOCS / page
    if not path.exists():
        pytest.fail(f"docs/{page} is missing")
    blocks = pycon_blocks(path)
    if not blocks:
        pytest.skip(f"docs/{page} has no ```pycon examples")
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    namespace: dict = {}
    output: list[str] = []
    for lineno, source in blocks:
        test = parser.get_doctest(source, namespace, f"docs/{page}", str(path), lineno)
        runner.run(test, out=output.append, clear_globs=False)
        namespace = test.globs  # DocTest copies its globals: carry them to the next block
    assert runner.failures == 0, "".join(output)


def config_blocks(page: Path, language: str) -> list[str]:
    text = page.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_training_config_files_are_valid(fresh_plugins):
    """The TOML and YAML examples load the way `psychohistory train` loads them."""
    import tomllib

    import yaml

    from psychohistory.plugins import list_registered
    from psychohistory.training.config import SFTSettings, TrainerConfig, check_extra

    page = DOCS / "training.md"
    (toml_text,) = config_blocks(page, "toml")
    (yaml_text,) = config_blocks(page, "yaml")
    grpo = tomllib.loads(toml_text)
    grpo = dict(grpo.get("train", grpo))  # as the CLI reads it: a [train] table or top level
    assert set(grpo.pop("rewards")) <= set(list_registered("reward"))
    for key in ("model", "cases", "backend", "weights", "matcher"):
        grpo.pop(key)
    config = TrainerConfig.from_dict(grpo)
    sft = yaml.safe_load(yaml_text)
    sft = dict(sft.get("train", sft))
    for key in ("model", "cases"):
        sft.pop(key)
    known = set(SFTSettings.__dataclass_fields__)
    extra = {k: sft.pop(k) for k in list(sft) if k not in known}
    SFTSettings(**sft, extra=extra)
    if _has("trl"):  # the pass-through keys are real TRL fields
        from trl import GRPOConfig, SFTConfig

        check_extra(config.extra, GRPOConfig)
        check_extra(extra, SFTConfig)


def test_plugin_guide_keeps_one_heading_per_hook():
    from psychohistory import hookspecs

    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    for hook in (name for name in dir(hookspecs) if name.startswith("register_")):
        assert f"## {hook}" in text, hook


def test_pages_do_not_link_outside_docs_relatively():
    # mkdocs cannot resolve ../examples/x.py: outside files are code spans or absolute URLs
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("#"):
                continue
            assert not target.startswith(("../", "/")), (page.name, target)
            path = target.split("#", 1)[0]
            assert not path or (DOCS / path).exists() or path.endswith("/"), (page.name, target)
