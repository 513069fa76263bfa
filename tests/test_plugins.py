import math
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import psychohistory as ph
from psychohistory import hookspecs, plugins
from psychohistory.errors import PluginError, RewardError, UnknownNameError

ROOT = Path(__file__).resolve().parents[1]


def test_builtins_register_through_the_hooks(fresh_plugins):
    assert {"exact", "fuzzy", "embedding", "llm", "cascade"} <= set(plugins.list_registered("matcher"))
    assert {"calibration", "sharpness", "diversity", "format"} <= set(plugins.list_registered("reward"))
    owners = {r.plugin for r in plugins.list_registered("reward").values()}
    assert owners == {"psychohistory.default_plugins.rewards"}


def test_unknown_name_lists_what_is_registered(fresh_plugins):
    with pytest.raises(UnknownNameError) as info:
        ph.get_reward("calibrashun")
    assert isinstance(info.value, KeyError)
    assert "calibration" in str(info.value) and "format" in str(info.value)
    with pytest.raises(KeyError, match="registered matchers: cascade, embedding"):
        ph.get_matcher("nope")
    with pytest.raises(KeyError, match="backend"):
        ph.get_backend("nope")


def test_register_rewards_hook(register_plugin):
    class Plugin:
        @ph.hookimpl
        def register_rewards(self, register):
            register("constant", lambda value=0.5: (lambda completions, **kw: [value] * len(completions)))

    register_plugin(Plugin(), "constant-plugin")
    reward = ph.get_reward("constant", value=0.25)
    assert reward(["a", "b"]) == [0.25, 0.25]
    assert reward.__name__ == "constant" and reward.plugin == "constant-plugin"


def test_register_matchers_hook(register_plugin):
    from psychohistory.matching.exact import ExactMatcher

    class Plugin:
        @ph.hookimpl
        def register_matchers(self, register):
            register("exact-again", ExactMatcher)

    register_plugin(Plugin(), "matcher-plugin")
    assert ph.get_matcher("exact-again").score(["A"], ["a"])[0, 0] == 1.0


def test_register_backends_hook(register_plugin):
    class Backend:
        def __init__(self, **options):
            self.options = options

    class Plugin:
        @ph.hookimpl
        def register_backends(self, register):
            register("mine", Backend)

    register_plugin(Plugin(), "backend-plugin")
    assert ph.get_backend("mine", region="eu").options == {"region": "eu"}


def test_register_commands_hook(register_plugin):
    import click
    from click.testing import CliRunner

    from psychohistory.cli import cli

    class Plugin:
        @ph.hookimpl
        def register_commands(self, cli):
            @cli.command(name="hello-plugin")
            def hello():
                click.echo("hello from a plugin")

    register_plugin(Plugin(), "command-plugin")
    plugins.get_plugin_manager().hook.register_commands(cli=cli)
    try:
        result = CliRunner().invoke(cli, ["hello-plugin"])
        assert result.exit_code == 0 and "hello from a plugin" in result.output
    finally:
        cli.commands.pop("hello-plugin", None)


def test_every_hook_has_a_test_and_a_docs_heading():
    hooks = [name for name in dir(hookspecs) if name.startswith("register_")]
    tests = Path(__file__).read_text()
    docs = (ROOT / "docs" / "plugins.md").read_text()
    for hook in hooks:
        assert f"def test_{hook}_hook" in tests, hook
        assert f"## {hook}" in docs, hook


def test_duplicate_names_name_both_plugins(register_plugin):
    class Plugin:
        @ph.hookimpl
        def register_rewards(self, register):
            register("format", lambda **kw: None)

    register_plugin(Plugin(), "copycat")
    with pytest.raises(PluginError) as info:
        ph.get_reward("format")
    assert "copycat" in str(info.value) and "psychohistory.default_plugins.rewards" in str(info.value)


def test_plugin_exceptions_name_the_plugin(register_plugin):
    class Plugin:
        @ph.hookimpl
        def register_rewards(self, register):
            raise RuntimeError("boom")

    register_plugin(Plugin(), "exploding")
    with pytest.raises(PluginError, match=r"plugin 'exploding'.*boom"):
        ph.get_reward("format")


def test_misspelt_hook_is_caught_by_check_pending(fresh_plugins):
    class Plugin:
        @ph.hookimpl
        def register_reward(self, register):  # missing "s"
            pass

    fresh_plugins.register(Plugin(), name="typo")
    try:
        with pytest.raises(Exception, match="unknown hook 'register_reward'"):
            fresh_plugins.check_pending()
    finally:
        fresh_plugins.unregister(name="typo")


@pytest.mark.parametrize(("values", "message"), [
    ([math.nan], "non-finite nan"), ([math.inf], "non-finite inf"), (["x"], "returned 'x'"),
    ([1.0, 2.0], "2 values for 1 completions"),
])
def test_bad_reward_values_name_the_plugin(register_plugin, values, message):
    class Plugin:
        @ph.hookimpl
        def register_rewards(self, register):
            register("bad", lambda: (lambda completions, **kw: values))

    register_plugin(Plugin(), "bad-plugin")
    with pytest.raises(RewardError, match=message) as info:
        ph.get_reward("bad")(["completion"])
    assert info.value.plugin == "bad-plugin"


def test_reward_raising_names_the_plugin(register_plugin):
    def failing(completions, **kwargs):
        raise ZeroDivisionError("oops")

    class Plugin:
        @ph.hookimpl
        def register_rewards(self, register):
            register("failing", lambda: failing)

    register_plugin(Plugin(), "fragile")
    with pytest.raises(RewardError, match=r"fragile.*ZeroDivisionError"):
        ph.get_reward("failing")(["c"])


def test_checked_rewards_pickle(fresh_plugins):
    for name in plugins.list_registered("reward"):
        reward = pickle.loads(pickle.dumps(ph.get_reward(name)))
        assert reward.__name__ == name


def test_bad_options_say_which_reward(fresh_plugins):
    with pytest.raises(ValueError, match=r"reward 'calibration'.*rule"):
        ph.get_reward("calibration", rule="spherical")


def test_trace_switch_prints_registrations(monkeypatch, capsys):
    monkeypatch.setenv("PSYCHOHISTORY_TRACE_PLUGINS", "1")
    monkeypatch.setenv("PSYCHOHISTORY_LOAD_PLUGINS", "")
    plugins.reset_plugin_manager()
    try:
        ph.get_reward("format")
        assert "registered reward 'format'" in capsys.readouterr().err
    finally:
        plugins.reset_plugin_manager()


@pytest.fixture(scope="module")
def installed_brevity(tmp_path_factory):
    """The example plugin package, pip-installed (a real wheel build) into a folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT / "plugins" / "psychohistory-brevity")],
        check=True, capture_output=True)
    return target


def test_entry_point_discovery_from_a_real_install(installed_brevity, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_brevity))
    monkeypatch.delenv("PSYCHOHISTORY_LOAD_PLUGINS", raising=False)
    plugins.reset_plugin_manager()
    try:
        reward = ph.get_reward("brevity", max_words=3)
        assert reward.plugin == "brevity"
        tree = '{"seed": "S", "children": [{"event": "Prices rise", "probability": 0.5}]}'
        assert reward([tree]) == [1.0]
        summary = {row["name"]: row for row in plugins.plugin_summary()}
        assert summary["brevity"]["rewards"] == ["brevity"]
        assert summary["brevity"]["distribution"] == "psychohistory-brevity 0.1.0"
    finally:
        plugins.reset_plugin_manager()


def test_allow_list_limits_installed_plugins(installed_brevity, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_brevity))
    monkeypatch.setenv("PSYCHOHISTORY_LOAD_PLUGINS", "something-else")
    plugins.reset_plugin_manager()
    try:
        with pytest.raises(KeyError):
            ph.get_reward("brevity")
        monkeypatch.setenv("PSYCHOHISTORY_LOAD_PLUGINS", "psychohistory-brevity")
        plugins.reset_plugin_manager()
        assert ph.get_reward("brevity").__name__ == "brevity"
    finally:
        plugins.reset_plugin_manager()


def test_import_is_light():
    code = ("import sys, time; t = time.perf_counter(); import psychohistory; "
            "dt = time.perf_counter() - t; "
            "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'trl', "
            "'peft', 'scipy', 'matplotlib', 'modal') if m in sys.modules]; "
            "print(heavy, dt)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    heavy, seconds = out.rsplit(" ", 1)
    assert heavy == "[]"
    assert float(seconds) < 1.0


def test_a_plugin_whose_register_commands_raises_never_breaks_help(register_plugin, capsys):
    from psychohistory.cli import main

    class Plugin:
        @ph.hookimpl
        def register_commands(self, cli):
            raise RuntimeError("this plugin is broken")

    register_plugin(Plugin(), "broken-commands")
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    captured = capsys.readouterr()
    assert "Usage:" in captured.out
    assert "plugin 'broken-commands' failed in register_commands" in captured.err
    assert "PSYCHOHISTORY_LOAD_PLUGINS" in captured.err
