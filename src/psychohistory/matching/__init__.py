"""Matchers decide which predicted events are the actual ones: exact, fuzzy, embedding, llm, cascade."""

from psychohistory.matching.base import Match, Matcher, assign
from psychohistory.matching.events import EventSignature, conflicts, signature

__all__ = ["EventSignature", "Match", "Matcher", "assign", "conflicts", "signature"]
