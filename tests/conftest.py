from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Plumbing tests (training loops, examples, the CLI) resolve with the fast MiniLM verifier: the
# SmolLM2 default reads ~16 pairs/s on a 2-core CPU. Tests of resolution itself use the default
# explicitly (the `event_matcher` fixture, tests/test_matchers.py, the results-table test).
os.environ.setdefault("PSYCHOHISTORY_VERIFIER", "verifier-minilm")

import pytest

from psychohistory import plugins
from psychohistory.cases import Case, Outcome


@pytest.fixture
def fresh_plugins(monkeypatch):
    """A plugin manager loaded afresh, with only the built-ins; reset again afterwards."""
    monkeypatch.setenv("PSYCHOHISTORY_LOAD_PLUGINS", "")
    plugins.reset_plugin_manager()
    try:
        yield plugins.get_plugin_manager()
    finally:
        plugins.reset_plugin_manager()


@pytest.fixture
def register_plugin(fresh_plugins):
    """Register a plugin object for one test and always unregister it."""
    registered = []

    def register(plugin, name):
        fresh_plugins.register(plugin, name=name)
        registered.append(plugin)
        return plugin

    yield register
    for plugin in registered:
        if fresh_plugins.is_registered(plugin):
            fresh_plugins.unregister(plugin)


@pytest.fixture
def brexit_case():
    return Case(
        id="brexit-2016", seed="United Kingdom votes to leave the European Union",
        context="51.9% leave", outcomes=[
            Outcome(id="o1", event="David Cameron announces his resignation"),
            Outcome(id="o2", event="Theresa May becomes prime minister", parent="o1"),
            Outcome(id="o3", event="The pound falls to a 31-year low against the dollar"),
        ])


@pytest.fixture(scope="session")
def embedding_matcher():
    from psychohistory.matching.embedding import EmbeddingMatcher

    return EmbeddingMatcher()


@pytest.fixture(scope="session")
def event_matcher(embedding_matcher):
    """The default event cascade (exact, candidates, the default SmolLM2 verifier), loaded once."""
    from psychohistory.matching.cascade import CascadeMatcher
    from psychohistory.matching.verifier import VerifierMatcher

    return CascadeMatcher(embedding=embedding_matcher, verifier=VerifierMatcher())
