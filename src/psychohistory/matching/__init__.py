"""Matchers decide which predicted events are the actual ones: exact, fuzzy, embedding, verifier,
llm, and the cascade that combines them."""

from psychohistory.matching.base import Match, Matcher, assign

__all__ = ["Match", "Matcher", "assign"]
