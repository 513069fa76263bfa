"""Built-in execution backends."""

from __future__ import annotations

from typing import Any

from psychohistory.hookspecs import hookimpl


@hookimpl
def register_backends(register: Any) -> None:
    """Backends arrive with the training issue; the hook is wired so the path is real."""
