"""Built-in execution backends."""

from __future__ import annotations

from typing import Any

from psychohistory.hookspecs import hookimpl


@hookimpl
def register_backends(register: Any) -> None:
    from psychohistory.backends.local import LocalBackend

    register("local", LocalBackend)
