"""Built-in matchers: classes are imported only when a matcher is built."""

from __future__ import annotations

from typing import Any

from psychohistory.hookspecs import hookimpl


def _lazy(module: str, cls: str) -> Any:
    def factory(**options: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), cls)(**options)

    factory.__name__ = cls
    factory.__doc__ = f"Build {module}.{cls}."
    return factory


@hookimpl
def register_matchers(register: Any) -> None:
    register("exact", _lazy("psychohistory.matching.exact", "ExactMatcher"))
    register("fuzzy", _lazy("psychohistory.matching.fuzzy", "FuzzyMatcher"))
    register("embedding", _lazy("psychohistory.matching.embedding", "EmbeddingMatcher"))
    register("verifier", _lazy("psychohistory.matching.verifier", "VerifierMatcher"))
    register("verifier-minilm", _lazy("psychohistory.matching.verifier", "MiniLMVerifierMatcher"))
    register("llm", _lazy("psychohistory.matching.llm", "LLMMatcher"))
    register("cascade", _lazy("psychohistory.matching.cascade", "CascadeMatcher"))
