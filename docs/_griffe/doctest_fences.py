"""A griffe extension for the API reference: render docstring doctests as code.

psychohistory's docstrings carry runnable ``>>>`` examples in free text (pytest runs them as
doctests). Markdown would read ``>>>`` as nested quotes and ``[...]`` in their output as
links, so each doctest block (from a ``>>>`` line to the next blank line) is wrapped in a
``pycon`` fence before mkdocstrings renders the docstring. Loaded from mkdocs.yml; this
folder is excluded from the built site.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """``text`` with every doctest block outside an existing fence wrapped in ```pycon."""
    out: list[str] = []
    in_fence = False
    in_doctest = False
    for line in text.splitlines():
        stripped = line.strip()
        if not in_doctest and stripped.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and not in_doctest and stripped.startswith(">>>"):
            if out and out[-1].strip():
                out.append("")
            out.append("```pycon")
            in_doctest = True
        elif in_doctest and not stripped:
            out.append("```")
            in_doctest = False
        out.append(line)
    if in_doctest:
        out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Wrap doctest blocks of every docstring in ```pycon fences."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
